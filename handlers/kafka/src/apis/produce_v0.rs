//! Produce v0-2 (key 0): advertised, never served.
//!
//! Kafka 4 dropped Produce v0-2 (KIP-896) but still advertises Produce from
//! v0 (KAFKA-18659): librdkafka up to 2.10 enables gzip, snappy, lz4 and
//! zstd only if the broker lists Produce v0 (its feature checks predate
//! v3), and without them it silently sends uncompressed batches. So
//! ApiVersions lists Produce from v0 and a request at v0-2 is answered, as
//! in Kafka 4, with UNSUPPORTED_VERSION for every partition it names, in the
//! response format of its version; the connection stays open. Nothing is
//! stored: those versions carry message sets v0/v1, which this broker does
//! not read.
//!
//! The request is read by hand, since `kafka-protocol` has no schema for
//! these versions; every count is checked against the bytes left before
//! anything is read, and nothing is allocated from a count.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{errors, ProtocolError};

/// Versions refused (advertised in ApiVersions, below `produce::VERSIONS`).
pub const REFUSED: std::ops::RangeInclusive<i16> = 0..=2;

/// Reads a Kafka STRING (i16 length, not null).
fn string(body: &mut Bytes) -> Result<Bytes, ProtocolError> {
    let len = take(body, 2)?.get_i16();
    let len = usize::try_from(len).map_err(|_| ProtocolError::Decode(format!("string of length {len}")))?;
    take(body, len)
}

/// Takes `n` bytes off `body`, or a decode error if it has fewer.
fn take(body: &mut Bytes, n: usize) -> Result<Bytes, ProtocolError> {
    if body.remaining() < n {
        return Err(ProtocolError::Decode(format!("produce v0-2: {n} bytes wanted, {} left", body.remaining())));
    }
    Ok(body.split_to(n))
}

/// Reads an array count and checks it against the bytes that must carry its
/// elements (`min_element` bytes each at least).
fn count(body: &mut Bytes, min_element: usize) -> Result<usize, ProtocolError> {
    let n = take(body, 4)?.get_i32();
    match usize::try_from(n) {
        Ok(n) if n.saturating_mul(min_element) <= body.remaining() => Ok(n),
        _ => Err(ProtocolError::Decode(format!("produce v0-2: {n} elements in {} bytes", body.remaining()))),
    }
}

/// The answer to a Produce v0-2 request, `body` being the frame from the
/// header's client id on, or `None` for acks=0; every partition named gets
/// UNSUPPORTED_VERSION.
pub fn refuse(correlation_id: i32, version: i16, mut body: Bytes) -> Result<Option<BytesMut>, ProtocolError> {
    let body = &mut body;
    // The client id: a nullable string (-1: null).
    let client_id = take(body, 2)?.get_i16();
    take(body, usize::try_from(client_id).unwrap_or(0))?;
    let acks = take(body, 2)?.get_i16();
    let _timeout = take(body, 4)?;
    let mut out = BytesMut::new();
    out.put_i32(0); // size, set below
    out.put_i32(correlation_id);
    // topic: name (2 bytes at least) and a partition count (4).
    let topics = count(body, 6)?;
    out.put_i32(i32::try_from(topics).map_err(ProtocolError::encode)?);
    for _ in 0..topics {
        let name = string(body)?;
        out.put_i16(i16::try_from(name.len()).map_err(ProtocolError::encode)?);
        out.put_slice(&name);
        // partition: index (4) and a record set length (4).
        let partitions = count(body, 8)?;
        out.put_i32(i32::try_from(partitions).map_err(ProtocolError::encode)?);
        for _ in 0..partitions {
            let index = take(body, 4)?.get_i32();
            let len = take(body, 4)?.get_i32();
            take(body, usize::try_from(len).unwrap_or(0))?;
            out.put_i32(index);
            out.put_i16(errors::UNSUPPORTED_VERSION);
            out.put_i64(-1); // base offset
            if version >= 2 {
                out.put_i64(-1); // log append time
            }
        }
    }
    if version >= 1 {
        out.put_i32(0); // throttle time
    }
    if acks == 0 {
        return Ok(None);
    }
    let size = i32::try_from(out.len() - 4).map_err(ProtocolError::encode)?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    tracing::info!(version, "Produce below v3 refused with UNSUPPORTED_VERSION (Kafka 4 serves v3 and later)");
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(acks: i16, topics: &[(&str, &[i32])]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(2);
        b.put_slice(b"id");
        b.put_i16(acks);
        b.put_i32(1000);
        b.put_i32(topics.len() as i32);
        for (name, partitions) in topics {
            b.put_i16(name.len() as i16);
            b.put_slice(name.as_bytes());
            b.put_i32(partitions.len() as i32);
            for p in *partitions {
                b.put_i32(*p);
                b.put_i32(3);
                b.put_slice(b"abc");
            }
        }
        b.freeze()
    }

    #[test]
    fn every_partition_gets_unsupported_version_in_its_version_format() {
        let body = request(1, &[("a", &[0, 1]), ("bc", &[2])]);
        for (version, per_partition, trailer) in [(0, 14, 0), (1, 14, 4), (2, 22, 4)] {
            let mut out = refuse(9, version, body.clone()).expect("decodes").expect("answered").freeze();
            assert_eq!(out.get_i32() as usize, out.len());
            assert_eq!(out.get_i32(), 9);
            assert_eq!(out.get_i32(), 2, "topics");
            assert_eq!(out.len(), 2 + 1 + 4 + 2 * per_partition + 2 + 2 + 4 + per_partition + trailer);
            assert_eq!(out.get_i16(), 1);
            out.advance(1);
            assert_eq!(out.get_i32(), 2);
            assert_eq!(out.get_i32(), 0);
            assert_eq!(out.get_i16(), errors::UNSUPPORTED_VERSION);
        }
        assert!(refuse(9, 0, request(0, &[("a", &[0])])).expect("decodes").is_none(), "acks=0: no answer");
    }

    #[test]
    fn counts_and_lengths_that_lie_are_refused_without_allocating() {
        let mut b = BytesMut::new();
        b.put_i16(-1); // null client id
        b.put_i16(1);
        b.put_i32(1000);
        b.put_i32(i32::MAX); // topics
        assert!(refuse(1, 0, b.clone().freeze()).is_err());
        let mut body = request(1, &[("a", &[0])]).to_vec();
        let len = body.len();
        body[len - 7..len - 3].copy_from_slice(&i32::MAX.to_be_bytes()); // record set length
        assert!(refuse(1, 0, Bytes::from(body)).is_err());
    }
}
