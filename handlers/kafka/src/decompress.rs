//! Decoding stored record batches with a bound on what decompression may
//! produce.
//!
//! Batches are stored as their producer compressed them (nothing is
//! decompressed on produce), and only readers that need the records —
//! conversion for another protocol's consumers, ListOffsets by time inside
//! a compressed batch — decompress them. kafka-protocol's decompressors
//! inflate a whole batch into memory with no limit, so a batch of a few
//! MiB that inflates to many GiB (a "compression bomb") could take the
//! broker's memory. These streaming decompressors stop at
//! [`MAX_DECOMPRESSED`] and the batch is refused instead.

use std::io::Read;

use bytes::{Buf, Bytes};
use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordSet};

/// The most bytes one batch may decompress to (Kafka's default
/// `message.max.bytes` is 1 MiB compressed; 256 MiB leaves room for any
/// compression ratio real data has).
pub const MAX_DECOMPRESSED: u64 = 256 << 20;

/// Snappy as the Java client frames it (xerial): this header, then
/// length-prefixed blocks. Without it the payload is raw snappy.
const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

fn too_large(limit: u64) -> anyhow::Error {
    anyhow::anyhow!("the batch decompresses to more than {limit} bytes")
}

/// Reads `reader` to the end, or fails once it passed `limit` bytes.
fn read_bounded(reader: impl Read, limit: u64) -> anyhow::Result<Bytes> {
    let mut out = Vec::new();
    reader.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(Bytes::from(out))
}

/// Decompresses the records of one batch, at most `limit` bytes of them.
pub fn bounded(data: &Bytes, compression: Compression, limit: u64) -> anyhow::Result<Bytes> {
    match compression {
        Compression::None => Ok(data.clone()),
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(data.as_ref()), limit),
        Compression::Zstd => read_bounded(zstd::stream::read::Decoder::new(data.as_ref())?, limit),
        Compression::Lz4 => read_bounded(lz4::Decoder::new(data.as_ref())?, limit),
        Compression::Snappy => snappy(data, limit),
    }
}

/// Snappy states each block's decompressed length up front: checked before
/// anything is inflated.
fn snappy(data: &Bytes, limit: u64) -> anyhow::Result<Bytes> {
    let mut decoder = snap::raw::Decoder::new();
    if !data.starts_with(XERIAL_MAGIC) {
        if snap::raw::decompress_len(data)? as u64 > limit {
            return Err(too_large(limit));
        }
        return Ok(Bytes::from(decoder.decompress_vec(data)?));
    }
    let mut rest = data.slice(XERIAL_MAGIC.len()..);
    let mut out = Vec::new();
    while rest.has_remaining() {
        anyhow::ensure!(rest.remaining() >= 4, "snappy block length cut short");
        let size = rest.get_u32() as usize;
        anyhow::ensure!(rest.remaining() >= size, "snappy block cut short");
        let block = rest.split_to(size);
        let len = snap::raw::decompress_len(&block)?;
        if (out.len() + len) as u64 > limit {
            return Err(too_large(limit));
        }
        let start = out.len();
        out.resize(start + len, 0);
        decoder.decompress(&block, &mut out[start..])?;
    }
    Ok(Bytes::from(out))
}

/// Every batch in `batches`, each decompressed to at most
/// [`MAX_DECOMPRESSED`] bytes.
pub fn decode_all(batches: &mut Bytes) -> anyhow::Result<Vec<RecordSet>> {
    let decompress = |data: &mut Bytes, compression: Compression| bounded(data, compression, MAX_DECOMPRESSED);
    let mut sets = Vec::new();
    while batches.has_remaining() {
        sets.push(RecordBatchDecoder::decode_with_custom_compression(batches, Some(decompress))?);
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    use super::*;

    fn batch(compression: Compression, value: Bytes) -> Bytes {
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 1,
            key: None,
            value: Some(value),
            headers: Default::default(),
        };
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(&mut out, [&record], &RecordEncodeOptions { version: 2, compression })
            .expect("encodes");
        out.freeze()
    }

    #[test]
    fn every_codec_decodes_within_the_bound_and_a_bomb_is_refused() {
        for compression in
            [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
        {
            let value = Bytes::from(vec![7u8; 100_000]);
            let sets = decode_all(&mut batch(compression, value.clone())).expect("decodes");
            assert_eq!(sets[0].records[0].value.as_ref(), Some(&value), "{compression:?}");
            if compression == Compression::None {
                continue;
            }
            // 100 kB of one byte compresses to almost nothing: with a 10 kB
            // bound it is a bomb.
            let mut stored = batch(compression, value);
            let small = |data: &mut Bytes, c: Compression| bounded(data, c, 10_000);
            let err = RecordBatchDecoder::decode_with_custom_compression(&mut stored, Some(small))
                .expect_err("over the bound");
            assert!(format!("{err:#}").contains("more than 10000 bytes"), "{compression:?}: {err:#}");
        }
    }
}
