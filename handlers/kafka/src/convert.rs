//! Kafka record batches to and from protocol-neutral messages: this handler
//! owns the Kafka entry format, so it converts it for readers of other
//! protocols (registered with the host at start), and it turns entries other
//! protocols wrote into record batches for Fetch.
//!
//! Mapping (as KoP maps them): key and value as they are (null
//! stays null), headers are properties (a null header value is an empty
//! property), the record timestamp is both event time and publish time; in
//! the other direction the timestamp is the event time if set, else the
//! publish time. Compressed batches (gzip, snappy, lz4, zstd) are
//! decompressed; batches built for Fetch are uncompressed.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::{
    protocol::StrBytes,
    records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType},
};
use polyport_handler_api::{
    convert::{Converter, Message},
    ErrorKind, HandlerError,
};

/// The converter of [`crate::records::FORMAT_KAFKA`] entries.
#[derive(Debug, Default)]
pub struct KafkaConverter;

impl Converter for KafkaConverter {
    fn to_messages(&self, payload: &[u8]) -> Result<Vec<Message>, HandlerError> {
        messages(Bytes::copy_from_slice(payload))
    }

    /// An uncompressed entry decodes to no more than its own bytes; a
    /// compressed one is unknown until decompressed.
    fn decoded_bytes_bound(&self, payload: &[u8]) -> Option<usize> {
        crate::records::all_uncompressed(payload).then_some(payload.len())
    }
}

/// The messages of the record batches in `batches`; keys and values are
/// slices of it, not copies.
pub fn messages(mut batches: Bytes) -> Result<Vec<Message>, HandlerError> {
    // The decoder gives each record its own timestamp; in a LogAppendTime
    // batch that is the batch's max timestamp, which it does not apply.
    let stamps = crate::records::log_append_stamps(&batches);
    let sets = crate::decompress::decode_all(&mut batches)
        .map_err(|e| HandlerError::new(ErrorKind::CORRUPT, format!("Kafka record batch does not decode: {e:#}")))?;
    Ok(sets
        .into_iter()
        .enumerate()
        .flat_map(|(i, set)| {
            let stamp = stamps.get(i).copied().flatten();
            set.records.into_iter().map(move |r| (stamp, r))
        })
        .filter(|(_, r)| !r.control)
        .map(|(stamp, r)| {
            let timestamp = stamp.unwrap_or(r.timestamp);
            Message {
                key: r.key,
                value: r.value,
                properties: r.headers.into_iter().map(|(k, v)| (k.to_string(), v.unwrap_or_default())).collect(),
                event_time_ms: Some(timestamp),
                publish_time_ms: timestamp,
            }
        })
        .collect())
}

/// Appends to `out` one uncompressed record batch holding `messages` at
/// offsets from `base_offset`; on error `out` is as it was.
pub fn to_record_batch(messages: Vec<Message>, base_offset: u64, out: &mut BytesMut) -> Result<(), HandlerError> {
    if messages.is_empty() {
        // An entry with nothing for a Kafka reader (a chunk before a Pulsar
        // message's last): its offsets are skipped by an empty batch.
        empty_batch(base_offset, 1, out);
        return Ok(());
    }
    let records: Vec<Record> = messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: base_offset as i64 + i as i64,
            // No producer sequence (the batch's base sequence is -1); the
            // encoder keeps records in one batch only while offset minus
            // sequence stays the same.
            sequence: i as i32 - 1,
            timestamp: m.event_time_ms.unwrap_or(m.publish_time_ms),
            key: m.key,
            value: m.value,
            headers: m
                .properties
                .into_iter()
                .map(|(k, v)| (StrBytes::from_string(k), Some(v)))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let before = out.len();
    RecordBatchEncoder::encode(out, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .map_err(|e| {
            out.truncate(before);
            HandlerError::new(ErrorKind::INVALID_ARGUMENT, format!("record batch: {e}"))
        })
}

/// A record batch (v2) with no records covering `count` offsets from
/// `base_offset`: what a compacted Kafka log holds where every record of a
/// batch was removed. Clients move past its last offset. kafka-protocol's
/// encoder writes nothing for no records, so the 61 bytes are written here.
pub fn empty_batch(base_offset: u64, count: u32, out: &mut BytesMut) {
    use bytes::BufMut as _;
    let mut body = BytesMut::with_capacity(40);
    body.put_i16(0); // attributes: no compression, create time
    body.put_i32(count.saturating_sub(1) as i32); // last offset delta
    body.put_i64(-1); // base timestamp
    body.put_i64(-1); // max timestamp
    body.put_i64(-1); // producer id
    body.put_i16(-1); // producer epoch
    body.put_i32(-1); // base sequence
    body.put_i32(0); // records
    out.put_i64(base_offset as i64);
    // Length from the partition leader epoch on: epoch, magic, crc, body.
    out.put_i32(4 + 1 + 4 + body.len() as i32);
    out.put_i32(-1); // partition leader epoch
    out.put_i8(2); // magic
    out.put_u32(crc32c::crc32c(&body));
    out.put_slice(&body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_batch_is_a_valid_batch_of_no_records() {
        let mut out = BytesMut::new();
        empty_batch(41, 3, &mut out);
        assert_eq!(out.len(), 61);
        assert_eq!(out[..8], 41i64.to_be_bytes(), "base offset");
        assert_eq!(out[23..27], 2i32.to_be_bytes(), "last offset delta: three offsets");
        let mut bytes = out.freeze();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).expect("decodes, CRC and all");
        assert!(set.records.is_empty());
    }

    #[test]
    fn a_batch_round_trips_through_messages() {
        let messages = vec![
            Message {
                key: Some(Bytes::from_static(b"k")),
                value: None,
                properties: vec![("h".into(), Bytes::from_static(b"v"))],
                event_time_ms: Some(42),
                publish_time_ms: 42,
            },
            Message {
                key: None,
                value: Some(Bytes::from_static(b"x")),
                properties: vec![],
                event_time_ms: Some(43),
                publish_time_ms: 43,
            },
        ];
        let mut out = BytesMut::from(&b"earlier"[..]);
        to_record_batch(messages.clone(), 10, &mut out).expect("encodes");
        let batch = out.split_off(7).freeze();
        assert_eq!(KafkaConverter.to_messages(&batch).expect("decodes"), messages);
        assert!(KafkaConverter.to_messages(&batch[..batch.len() - 3]).is_err());
    }
}
