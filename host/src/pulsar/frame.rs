//! Pulsar binary protocol frames, read and written by hand around the
//! protocol's protobuf types ([`super::proto`]).
//!
//! A client library's codec copies payloads, has no size limit and cannot
//! be told to keep the message bytes as they came; the framing is a few
//! lines, so it is ours:
//!
//! ```text
//! [total u32][command size u32][BaseCommand]
//!     ( [0x0e01 u16][crc32c u32][metadata size u32][MessageMetadata][payload] )?
//! ```
//!
//! The CRC32C covers everything after it. The size is checked before
//! anything is read or decoded; a message section is returned as one
//! `Bytes` slice of the frame (from the metadata size on), which is exactly
//! what a SEND stores and a MESSAGE sends back, with no copy.

use crate::pulsar::proto::{base_command::Type, BaseCommand, MessageMetadata};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The magic number before the checksum of a message section.
const MAGIC_CRC32C: u16 = 0x0e01;
/// The magic number of a broker entry metadata section (clients never send it).
const MAGIC_BROKER_ENTRY_METADATA: u16 = 0x0e02;
/// Room for the command and framing around the largest message (Pulsar's
/// `MESSAGE_SIZE_FRAME_PADDING`).
pub const FRAME_PADDING: usize = 10 * 1024;

/// A frame's buffer before its bytes arrive; it grows as they do.
const INITIAL_FRAME_CAPACITY: usize = 64 * 1024;

/// A frame that cannot be read: the connection ends (the stream cannot be
/// resynchronised).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Reading the socket failed.
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
    /// The frame is larger than the limit (or impossibly small).
    #[error("frame of {size} bytes: the limit is {limit} (maxMessageSize + {FRAME_PADDING})")]
    Size {
        /// Announced size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The frame's contents do not follow the protocol.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// The message section of a frame.
#[derive(Debug, Clone)]
pub struct MessageSection {
    /// `[metadata size][metadata][payload]`: what the ledger stores.
    pub raw: Bytes,
    /// The decoded metadata.
    pub metadata: MessageMetadata,
    /// The CRC32C of `raw`, checked against the client's: the ledger stores
    /// it as the entry's payload checksum, and a MESSAGE sends it back, so
    /// the bytes are checksummed once.
    pub crc: u32,
}

impl MessageSection {
    /// The payload's length (after the metadata), as stored.
    pub fn payload_len(&self) -> usize {
        let metadata = self.raw.get(..4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
        self.raw.len().saturating_sub(4 + metadata)
    }
}

/// One decoded frame.
#[derive(Debug)]
pub struct Frame {
    /// The command.
    pub command: BaseCommand,
    /// The message section, for SEND.
    pub message: Option<MessageSection>,
}

/// Reads one frame; `None` at a clean end of stream.
pub async fn read<R: AsyncRead + Unpin>(reader: &mut R, limit: usize) -> Result<Option<Frame>, FrameError> {
    let total = match reader.read_u32().await {
        Ok(n) => n as usize,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !(4..=limit).contains(&total) {
        return Err(FrameError::Size { size: total, limit });
    }
    // Read as the bytes arrive: a size that is announced but never sent
    // allocates nothing (growth doubles, so at most twice what arrived).
    let mut buf = Vec::with_capacity(total.min(INITIAL_FRAME_CAPACITY));
    let read = (&mut *reader).take(total as u64).read_to_end(&mut buf).await?;
    if read < total {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("connection closed inside a {total}-byte frame"),
        )
        .into());
    }
    decode(Bytes::from(buf)).map(Some)
}

/// Decodes a frame body (everything after the total size).
pub fn decode(mut body: Bytes) -> Result<Frame, FrameError> {
    let malformed = |m: String| FrameError::Malformed(m);
    if body.len() < 4 {
        return Err(malformed(format!("{} bytes: too short for a command", body.len())));
    }
    let command_size = body.get_u32() as usize;
    if command_size > body.len() {
        return Err(malformed(format!("command size {command_size} exceeds the frame ({} bytes left)", body.len())));
    }
    let command = BaseCommand::decode(body.split_to(command_size))
        .map_err(|e| malformed(format!("command does not decode: {e}")))?;
    if body.is_empty() {
        return Ok(Frame { command, message: None });
    }
    if body.len() >= 2 && u16::from_be_bytes([body[0], body[1]]) == MAGIC_BROKER_ENTRY_METADATA {
        return Err(malformed("broker entry metadata from a client".into()));
    }
    if body.len() < 10 || body.get_u16() != MAGIC_CRC32C {
        return Err(malformed("a message section must start with magic 0x0e01 and a checksum".into()));
    }
    let checksum = body.get_u32();
    let computed = crc32c::crc32c(&body);
    if checksum != computed {
        return Err(malformed(format!(
            "checksum mismatch: frame says {checksum:#010x}, contents give {computed:#010x}"
        )));
    }
    let raw = body.clone();
    let metadata_size = body.get_u32() as usize;
    if metadata_size > body.len() {
        return Err(malformed(format!("metadata size {metadata_size} exceeds the frame")));
    }
    let metadata = MessageMetadata::decode(body.split_to(metadata_size))
        .map_err(|e| malformed(format!("message metadata does not decode: {e}")))?;
    Ok(Frame { command, message: Some(MessageSection { raw, metadata, crc: computed }) })
}

/// A command of type `t`, its fields set by `fill`.
pub fn cmd(t: Type, fill: impl FnOnce(&mut BaseCommand)) -> BaseCommand {
    let mut c = BaseCommand { r#type: t as i32, ..Default::default() };
    fill(&mut c);
    c
}

/// Encodes a command-only frame.
pub fn command(command: &BaseCommand) -> Bytes {
    let size = command.encoded_len();
    let mut out = BytesMut::with_capacity(8 + size);
    out.put_u32((4 + size) as u32);
    out.put_u32(size as u32);
    // Encoding into a BytesMut with enough capacity cannot fail.
    let _ = command.encode(&mut out);
    out.freeze()
}

/// Encodes a frame with a message section; `raw` is `[metadata size][metadata][payload]`.
pub fn with_message(command: &BaseCommand, raw: &[u8]) -> Bytes {
    with_checked_message(command, raw, crc32c::crc32c(raw))
}

/// [`with_message`] for bytes whose CRC32C is known (a stored entry's).
pub fn with_checked_message(command: &BaseCommand, raw: &[u8], crc: u32) -> Bytes {
    let size = command.encoded_len();
    let mut out = BytesMut::with_capacity(8 + size + 6 + raw.len());
    out.put_u32((4 + size + 6 + raw.len()) as u32);
    out.put_u32(size as u32);
    let _ = command.encode(&mut out);
    out.put_u16(MAGIC_CRC32C);
    out.put_u32(crc);
    out.put_slice(raw);
    out.freeze()
}

/// Splits a stored message section into its metadata and payload.
pub fn split_section(raw: &Bytes) -> Option<(MessageMetadata, Bytes)> {
    split_sized(raw)
}

/// Decodes a `[size u32][protobuf]` prefix of `bytes`; returns it and the rest.
pub fn split_sized<M: prost::Message + Default>(bytes: &Bytes) -> Option<(M, Bytes)> {
    let mut b = bytes.clone();
    if b.len() < 4 {
        return None;
    }
    let size = b.get_u32() as usize;
    if size > b.len() {
        return None;
    }
    let message = M::decode(b.split_to(size)).ok()?;
    Some((message, b))
}

#[cfg(test)]
mod tests {
    use crate::pulsar::proto::{base_command::Type, CommandPing, CommandSend};

    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_refused() {
        let ping = BaseCommand { r#type: Type::Ping as i32, ping: Some(CommandPing {}), ..Default::default() };
        let mut bytes = command(&ping);
        bytes.advance(4);
        assert_eq!(decode(bytes).expect("decodes").command.r#type, Type::Ping as i32);

        let send = BaseCommand {
            r#type: Type::Send as i32,
            send: Some(CommandSend { producer_id: 1, sequence_id: 2, ..Default::default() }),
            ..Default::default()
        };
        let metadata =
            MessageMetadata { producer_name: "p".into(), sequence_id: 2, publish_time: 5, ..Default::default() };
        let mut raw = BytesMut::new();
        raw.put_u32(metadata.encoded_len() as u32);
        metadata.encode(&mut raw).expect("encode");
        raw.put_slice(b"hello");
        let framed = with_message(&send, &raw);
        let frame = decode(framed.slice(4..)).expect("decodes");
        let section = frame.message.expect("a message");
        assert_eq!(section.raw, raw);
        assert_eq!(split_section(&section.raw).expect("splits").1, Bytes::from_static(b"hello"));

        let mut broken = framed.slice(4..).to_vec();
        let last = broken.len() - 1;
        broken[last] ^= 1;
        let err = decode(Bytes::from(broken)).expect_err("checksum");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }
}
