//! Pulsar entries to and from protocol-neutral messages (as KoP maps them):
//! how a Kafka reader sees a Pulsar producer's messages, and how
//! a Pulsar consumer sees entries another protocol wrote.
//!
//! - key: Pulsar's ordering key if set, else its partition key (base64-decoded
//!   when flagged); a key becomes both the ordering key and the partition key
//!   (base64-encoded, with the flag, when it is not UTF-8);
//! - value: the payload, `null_value` for a null;
//! - properties: as they are (a non-UTF-8 value is replaced lossily: Pulsar
//!   properties are strings);
//! - times: event time per message; the batch's publish time is the first
//!   message's publish time.

use crate::pulsar::proto::{CompressionType, KeyValue, MessageMetadata, SingleMessageMetadata};
use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use polyport_handler_api::{convert::Message, ErrorKind, HandlerError};
use prost::Message as _;

use super::frame;

fn corrupt(message: String) -> HandlerError {
    HandlerError::new(ErrorKind::CORRUPT, message)
}

fn key_of(ordering: Option<Vec<u8>>, partition: Option<String>, b64: bool) -> Option<Bytes> {
    if let Some(k) = ordering {
        return Some(Bytes::from(k));
    }
    let k = partition?;
    if b64 {
        base64::engine::general_purpose::STANDARD.decode(k.as_bytes()).ok().map(Bytes::from)
    } else {
        Some(Bytes::from(k.into_bytes()))
    }
}

fn properties_of(kv: Vec<KeyValue>) -> Vec<(String, Bytes)> {
    kv.into_iter().map(|p| (p.key, Bytes::from(p.value.into_bytes()))).collect()
}

/// The largest payload a Pulsar batch may claim before compression. Pulsar
/// limits only the compressed size (`maxMessageSize`); a reader of another
/// protocol decompresses the batch, so its claim is bounded here, when it is
/// sent and again when it is read, before anything is allocated from it.
pub const MAX_UNCOMPRESSED: usize = 256 << 20;

/// The fewest bytes one message of a batch takes in the uncompressed
/// payload: its metadata size (4 bytes) and a `SingleMessageMetadata` with
/// its one required field, `payload_size` (2 bytes at least).
const MIN_MESSAGE_BYTES: usize = 6;

/// How many messages (offsets) a SEND's message section holds, once its
/// metadata's claims are checked against the bytes that carry them: a batch
/// claims at most one message per `MIN_MESSAGE_BYTES` of its uncompressed
/// payload, and a compressed one at most [`MAX_UNCOMPRESSED`] bytes of it.
/// The entry's count decides how many offsets it takes, so it must not be a
/// number the client chose freely.
pub fn message_count(metadata: &MessageMetadata, payload_len: usize) -> Result<u32, String> {
    let uncompressed = match metadata.compression() {
        CompressionType::None => payload_len,
        codec => match metadata.uncompressed_size {
            Some(size) if size as usize <= MAX_UNCOMPRESSED => size as usize,
            Some(size) => {
                return Err(format!(
                    "{codec:?} batch claims {size} bytes uncompressed; the limit is {MAX_UNCOMPRESSED}"
                ))
            }
            None => return Err(format!("{codec:?} batch without its uncompressed size")),
        },
    };
    let Some(count) = metadata.num_messages_in_batch else { return Ok(1) };
    let most = uncompressed / MIN_MESSAGE_BYTES;
    match usize::try_from(count) {
        Ok(n) if n >= 1 && n <= most => Ok(count as u32),
        _ => Err(format!(
            "batch claims {count} messages in {uncompressed} bytes (at most {most}: {MIN_MESSAGE_BYTES} bytes each at least)"
        )),
    }
}

/// The payload of a batch as the producer built it, before compression; the
/// claimed size is checked against [`MAX_UNCOMPRESSED`] before it sizes
/// anything, and no decoder writes past it.
fn decompress(compression: CompressionType, size: Option<u32>, payload: Bytes) -> Result<Bytes, HandlerError> {
    use std::io::Read as _;
    let size = size.unwrap_or(0) as usize;
    let failed = |e: &dyn std::fmt::Display| corrupt(format!("Pulsar batch compressed with {compression:?}: {e}"));
    if compression != CompressionType::None && size > MAX_UNCOMPRESSED {
        return Err(failed(&format!("claims {size} bytes uncompressed; the limit is {MAX_UNCOMPRESSED}")));
    }
    let out = match compression {
        CompressionType::None => return Ok(payload),
        // Pulsar's LZ4 is a raw block, its size in the metadata.
        CompressionType::Lz4 => lz4::block::decompress(&payload, Some(i32::try_from(size).map_err(|e| failed(&e))?))
            .map_err(|e| failed(&e))?,
        CompressionType::Zlib => {
            // Grows with what the stream yields, one byte past the claim at most.
            let mut out = Vec::new();
            let decoder = flate2::read::ZlibDecoder::new(&payload[..]);
            decoder.take(size as u64 + 1).read_to_end(&mut out).map_err(|e| failed(&e))?;
            out
        }
        CompressionType::Zstd => zstd::bulk::decompress(&payload, size).map_err(|e| failed(&e))?,
        CompressionType::Snappy => {
            // Snappy states its own length first; it must be the claimed one.
            let own = snap::raw::decompress_len(&payload).map_err(|e| failed(&e))?;
            if own != size {
                return Err(failed(&format!("snappy says {own} bytes, the metadata {size}")));
            }
            snap::raw::Decoder::new().decompress_vec(&payload).map_err(|e| failed(&e))?
        }
    };
    if out.len() != size {
        return Err(failed(&format!("{} bytes after decompression, the metadata says {size}", out.len())));
    }
    Ok(Bytes::from(out))
}

/// The messages of a stored Pulsar entry (`[metadata size][metadata][payload]`).
pub fn to_messages(raw: &[u8]) -> Result<Vec<Message>, HandlerError> {
    let raw = Bytes::copy_from_slice(raw);
    let (metadata, payload) =
        frame::split_section(&raw).ok_or_else(|| corrupt("Pulsar entry: metadata does not decode".into()))?;
    section_messages(metadata, payload)
}

/// [`to_messages`] for an entry already split into its metadata and its
/// payload (no copy, no second parse).
pub fn section_messages(metadata: MessageMetadata, payload: Bytes) -> Result<Vec<Message>, HandlerError> {
    let mut payload = decompress(metadata.compression(), metadata.uncompressed_size, payload)?;
    let publish_time_ms = metadata.publish_time as i64;
    let event = |t: Option<u64>| t.filter(|t| *t > 0).map(|t| t as i64);
    let Some(count) = metadata.num_messages_in_batch else {
        let b64 = metadata.partition_key_b64_encoded();
        let null = metadata.null_value();
        return Ok(vec![Message {
            key: key_of(metadata.ordering_key, metadata.partition_key, b64),
            value: (!null).then_some(payload),
            properties: properties_of(metadata.properties),
            event_time_ms: event(metadata.event_time),
            publish_time_ms,
        }]);
    };
    // Not sized by the claimed count: each message needs its bytes first.
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(payload.len() / MIN_MESSAGE_BYTES));
    for i in 0..count {
        if payload.remaining() < 4 {
            return Err(corrupt(format!("Pulsar batch: message {i} of {count} is missing")));
        }
        let size = payload.get_u32() as usize;
        if size > payload.remaining() {
            return Err(corrupt(format!("Pulsar batch: message {i} metadata overruns the entry")));
        }
        let single = SingleMessageMetadata::decode(payload.split_to(size))
            .map_err(|e| corrupt(format!("Pulsar batch: message {i} metadata: {e}")))?;
        let len = usize::try_from(single.payload_size).unwrap_or(usize::MAX);
        if len > payload.remaining() {
            return Err(corrupt(format!("Pulsar batch: message {i} payload overruns the entry")));
        }
        let value = payload.split_to(len);
        out.push(Message {
            key: key_of(single.ordering_key.clone(), single.partition_key.clone(), single.partition_key_b64_encoded()),
            value: (!single.null_value()).then_some(value),
            properties: properties_of(single.properties),
            event_time_ms: event(single.event_time),
            publish_time_ms,
        });
    }
    Ok(out)
}

/// A Pulsar batch entry (`[metadata size][metadata][payload]`) holding
/// `messages`; `sequence_id` is the entry's base offset.
pub fn from_messages(messages: &[Message], sequence_id: u64) -> Vec<u8> {
    let mut payload = BytesMut::new();
    for m in messages {
        let (partition_key, b64) = match &m.key {
            None => (None, None),
            Some(k) => match std::str::from_utf8(k) {
                Ok(s) => (Some(s.to_owned()), None),
                Err(_) => (Some(base64::engine::general_purpose::STANDARD.encode(k)), Some(true)),
            },
        };
        let value = m.value.clone().unwrap_or_default();
        let single = SingleMessageMetadata {
            properties: m
                .properties
                .iter()
                .map(|(k, v)| KeyValue { key: k.clone(), value: String::from_utf8_lossy(v).into_owned() })
                .collect(),
            partition_key,
            partition_key_b64_encoded: b64,
            ordering_key: m.key.as_ref().map(|k| k.to_vec()),
            payload_size: value.len() as i32,
            event_time: m.event_time_ms.map(|t| t.max(0) as u64),
            null_value: m.value.is_none().then_some(true),
            ..Default::default()
        };
        payload.put_u32(single.encoded_len() as u32);
        // Encoding into a growable buffer cannot fail.
        let _ = single.encode(&mut payload);
        payload.put_slice(&value);
    }
    let metadata = MessageMetadata {
        producer_name: "polyport".into(),
        sequence_id,
        publish_time: messages.first().map_or(0, |m| m.publish_time_ms.max(0) as u64),
        num_messages_in_batch: Some(messages.len() as i32),
        uncompressed_size: Some(payload.len() as u32),
        ..Default::default()
    };
    // A Vec, which both callers take over without a copy (Bytes, RVec).
    let mut raw = Vec::with_capacity(4 + metadata.encoded_len() + payload.len());
    raw.put_u32(metadata.encoded_len() as u32);
    let _ = metadata.encode(&mut raw);
    raw.put_slice(&payload);
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_sizes_are_checked_against_the_bytes_that_carry_them() {
        let batch = |count: i32| MessageMetadata { num_messages_in_batch: Some(count), ..Default::default() };
        assert_eq!(message_count(&MessageMetadata::default(), 5), Ok(1), "not a batch: one message");
        assert_eq!(message_count(&batch(2), 12), Ok(2));
        assert!(message_count(&batch(3), 12).is_err(), "6 bytes a message at least");
        assert!(message_count(&batch(0), 12).is_err());
        assert!(message_count(&batch(-1), 12).is_err());
        assert!(message_count(&batch(i32::MAX), 5).expect_err("lies").contains("2147483647"));
        let compressed = |size: Option<u32>| MessageMetadata {
            compression: Some(CompressionType::Lz4 as i32),
            uncompressed_size: size,
            num_messages_in_batch: Some(1000),
            ..Default::default()
        };
        assert_eq!(message_count(&compressed(Some(6000)), 10), Ok(1000), "counted in uncompressed bytes");
        assert!(message_count(&compressed(None), 10).is_err());
        assert!(message_count(&compressed(Some(u32::MAX)), 10).is_err());
        // The same limit when a stored entry is read: nothing is allocated from the claim.
        let lying = compressed(Some(u32::MAX));
        assert!(decompress(lying.compression(), lying.uncompressed_size, Bytes::from_static(b"x")).is_err());
        let snappy = snap::raw::Encoder::new().compress_vec(b"hello").expect("compresses");
        let claims = |n| decompress(CompressionType::Snappy, Some(n), Bytes::from(snappy.clone()));
        assert_eq!(claims(5).expect("as claimed"), Bytes::from_static(b"hello"));
        assert!(claims(4).is_err(), "snappy's own length must be the claimed one");
    }

    #[test]
    fn messages_survive_a_pulsar_batch() {
        let messages = vec![
            Message {
                key: Some(Bytes::from_static(b"k1")),
                value: Some(Bytes::from_static(b"v1")),
                properties: vec![("h".into(), Bytes::from_static(b"x"))],
                event_time_ms: Some(1000),
                publish_time_ms: 1000,
            },
            Message {
                key: Some(Bytes::from_static(b"\xff\x00")),
                value: None,
                properties: vec![],
                event_time_ms: Some(1001),
                publish_time_ms: 1000,
            },
            Message {
                key: None,
                value: Some(Bytes::new()),
                properties: vec![],
                event_time_ms: None,
                publish_time_ms: 1000,
            },
        ];
        let raw = from_messages(&messages, 5);
        assert_eq!(to_messages(&raw).expect("decodes"), messages);
        assert!(to_messages(&raw[..raw.len() - 1]).is_err(), "a truncated batch is an error");
    }
}
