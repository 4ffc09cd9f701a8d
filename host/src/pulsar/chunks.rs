//! Chunked messages (PIP-37) as readers of another protocol see them.
//!
//! A Pulsar producer splits a message larger than `maxMessageSize` into
//! chunks, each its own entry (one offset each) carrying the message's
//! `uuid`, its `chunk_id`, the number of chunks and the total size. Pulsar
//! consumers get the chunks and reassemble them in the client, as they do
//! from Pulsar. A Kafka reader has no such logic, so the host reassembles
//! for it: the last chunk's entry reads as the whole message, and the
//! earlier chunks as no message (their offsets are skipped, as a compacted
//! Kafka log skips offsets). A message whose earlier chunks are gone
//! (retention, or a producer that died between chunks) reads as nothing and
//! is logged.

use crate::pulsar::proto::MessageMetadata;
use bytes::{BufMut, Bytes, BytesMut};
use polyport_ledger::{ManagedLedger, ReadLimits};

use super::{convert::MAX_UNCOMPRESSED, frame};

/// How far back, in entries, the earlier chunks of a message are looked
/// for: chunks of one producer are consecutive, but other producers'
/// entries may sit between them.
const MAX_LOOKBACK: u64 = 100_000;

/// Where a chunk sits in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Not a chunk: a message whole in its entry.
    Whole,
    /// A chunk before the last: it reads as no message.
    Partial,
    /// The last chunk: it reads as the whole message.
    Last,
}

/// What the metadata says of an entry.
pub fn chunk_of(metadata: &MessageMetadata) -> Chunk {
    match (metadata.num_chunks_from_msg, metadata.chunk_id, &metadata.uuid) {
        (Some(n), Some(id), Some(_)) if n > 1 => {
            if id >= n - 1 {
                Chunk::Last
            } else {
                Chunk::Partial
            }
        }
        _ => Chunk::Whole,
    }
}

/// The whole message ending with the last chunk `last` (stored at `base`):
/// its metadata (without the chunk fields) and its payload, the earlier
/// chunks read back from `ledger`. `None` when they are not all there.
pub async fn assemble(
    ledger: &ManagedLedger,
    base: u64,
    last: MessageMetadata,
    last_payload: Bytes,
) -> Result<Option<(MessageMetadata, Bytes)>, String> {
    let (Some(uuid), Some(count), Some(total)) =
        (last.uuid.clone(), last.num_chunks_from_msg, last.total_chunk_msg_size)
    else {
        return Err("not a chunk".into());
    };
    let total = usize::try_from(total).map_err(|_| format!("chunked message of {total} bytes"))?;
    if total > MAX_UNCOMPRESSED {
        return Err(format!("chunked message of {total} bytes: the limit is {MAX_UNCOMPRESSED}"));
    }
    let count = usize::try_from(count).ok().filter(|c| *c >= 2).ok_or_else(|| format!("{count} chunks"))?;
    // Chunks by id, found walking back from the last.
    let mut chunks: Vec<Option<Bytes>> = vec![None; count];
    chunks[count - 1] = Some(last_payload);
    let mut missing = count - 1;
    let start = ledger.range().start;
    let mut offset = base;
    let floor = base.saturating_sub(MAX_LOOKBACK).max(start);
    while missing > 0 && offset > floor {
        offset -= 1;
        let one = ReadLimits { max_entries: 1, max_bytes: 1 };
        let batch = ledger.read(offset, one, None).await.map_err(|e| e.to_string())?;
        let Some(entry) = batch.entries.into_iter().next() else { break };
        offset = entry.meta.base_offset;
        if entry.meta.format != super::FORMAT_PULSAR {
            continue;
        }
        let Some((m, payload)) = frame::split_section(&entry.payload) else { continue };
        if m.uuid.as_deref() != Some(uuid.as_str()) {
            continue;
        }
        match m.chunk_id.and_then(|id| usize::try_from(id).ok()) {
            Some(id) if id < count - 1 && chunks[id].is_none() => {
                chunks[id] = Some(payload);
                missing -= 1;
            }
            // The first chunk of a message sent again from the start (the
            // producer resent it): the chunks before it are of no use.
            _ => {}
        }
    }
    if missing > 0 {
        tracing::warn!(topic = %ledger.name(), offset = base, %uuid, missing,
            "chunked message incomplete: its earlier chunks are gone; readers of other protocols skip it");
        return Ok(None);
    }
    let mut payload = BytesMut::with_capacity(total);
    for chunk in chunks.into_iter().flatten() {
        if payload.len() + chunk.len() > total {
            return Err(format!("chunks of {uuid} exceed the {total} bytes the message claims"));
        }
        payload.put_slice(&chunk);
    }
    if payload.len() != total {
        return Err(format!("chunks of {uuid} hold {} bytes, the message claims {total}", payload.len()));
    }
    let metadata =
        MessageMetadata { uuid: None, chunk_id: None, num_chunks_from_msg: None, total_chunk_msg_size: None, ..last };
    Ok(Some((metadata, payload.freeze())))
}
