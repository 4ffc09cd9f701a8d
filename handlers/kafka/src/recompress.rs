//! A topic's `compression.type`: a batch that arrives with another codec is
//! stored recompressed with the topic's, as Kafka does (its LogValidator
//! recompresses on the broker). Records keep everything but their codec:
//! keys, values, headers, timestamps and timestamp type, offsets deltas,
//! and the producer's id, epoch and sequences, so idempotence still holds.
//!
//! This runs on the connection's task (handlers have no blocking threads):
//! it is bounded by the topic's `max.message.bytes` going in and by
//! [`crate::decompress::MAX_DECOMPRESSED`] decompressed, and a topic pays
//! for it only when its producers use another codec than it asks for.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};

use crate::{
    configs::Codec,
    records::{self, Batch, BatchError},
};

/// The Kafka codec of a batch's attribute bits.
fn compression(codec: Codec) -> Option<Compression> {
    match codec {
        Codec::Producer => None,
        Codec::Uncompressed => Some(Compression::None),
        Codec::Gzip => Some(Compression::Gzip),
        Codec::Snappy => Some(Compression::Snappy),
        Codec::Lz4 => Some(Compression::Lz4),
        Codec::Zstd => Some(Compression::Zstd),
    }
}

/// `batch` as the topic stores it: itself when its codec is the topic's
/// (or the topic keeps the producer's), else recompressed and checked again
/// against `max_batch`.
pub fn to_topic_codec(batch: Batch, codec: Codec, max_batch: usize) -> Result<Batch, BatchError> {
    let (Some(wanted), Some(target)) = (codec.attribute(), compression(codec)) else { return Ok(batch) };
    if records::codec_bits(&batch.bytes) == wanted {
        return Ok(batch);
    }
    let mut bytes = batch.bytes.clone();
    let sets = crate::decompress::decode_all(&mut bytes)
        .map_err(|e| BatchError::Corrupt(format!("batch not decoded for recompression: {e:#}")))?;
    let records: Vec<_> = sets.into_iter().flat_map(|s| s.records).collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(&mut out, &records, &RecordEncodeOptions { version: 2, compression: target })
        .map_err(|e| BatchError::Corrupt(format!("batch not recompressed with {}: {e:#}", codec.name())))?;
    let mut split = records::split(Bytes::from(out), max_batch)?;
    match (split.pop(), split.is_empty()) {
        (Some(one), true) if one.count == batch.count => Ok(one),
        _ => Err(BatchError::Corrupt(format!(
            "recompressing {} records with {} did not give one batch",
            batch.count,
            codec.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::{Record, RecordBatchDecoder, TimestampType};

    use super::*;

    fn produced(compression: Compression, pid: i64, seq: i32) -> Bytes {
        let records: Vec<Record> = (0..3i32)
            .map(|i| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: 2,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                sequence: if pid < 0 { i - 1 } else { seq + i },
                timestamp: 1_700_000_000_000 + i64::from(i),
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'v'; 200])),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(&mut out, &records, &RecordEncodeOptions { version: 2, compression })
            .expect("encodes");
        out.freeze()
    }

    #[test]
    fn batches_take_the_topics_codec_and_keep_their_records_and_producer() {
        for (pid, seq) in [(-1, -1), (42, 7)] {
            let original = records::split(produced(Compression::None, pid, seq), 1 << 20).expect("valid").remove(0);
            let zstd = to_topic_codec(original.clone(), Codec::Zstd, 1 << 20).expect("recompressed");
            assert_eq!(records::codec_bits(&zstd.bytes), 4);
            assert!(zstd.bytes.len() < original.bytes.len());
            assert_eq!((zstd.count, zstd.producer_id, zstd.base_sequence), (3, pid, seq));
            assert_eq!(zstd.max_timestamp_ms, original.max_timestamp_ms);
            let back = to_topic_codec(zstd, Codec::Uncompressed, 1 << 20).expect("decompressed");
            let mut bytes = back.bytes.clone();
            let decoded = RecordBatchDecoder::decode(&mut bytes).expect("decodes");
            assert_eq!(decoded.records.len(), 3);
            assert_eq!(decoded.records[2].key.as_deref(), Some(&b"k2"[..]));
            assert_eq!(decoded.records[2].timestamp, 1_700_000_000_002);
        }
        let lz4 = records::split(produced(Compression::Lz4, -1, -1), 1 << 20).expect("valid").remove(0);
        let kept = to_topic_codec(lz4.clone(), Codec::Lz4, 1 << 20).expect("same codec");
        assert_eq!(kept.bytes, lz4.bytes, "a batch already in the topic's codec is kept as sent");
        assert_eq!(to_topic_codec(lz4.clone(), Codec::Producer, 1 << 20).expect("producer").bytes, lz4.bytes);
        let err = to_topic_codec(lz4, Codec::Uncompressed, 100).expect_err("too large once decompressed");
        assert!(matches!(err, BatchError::TooLarge { .. }), "{err}");
    }
}
