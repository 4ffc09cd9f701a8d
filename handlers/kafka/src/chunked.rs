//! Responses written as chunks that reference stored bytes, so that a
//! fetched batch is copied once, into the socket.
//!
//! kafka-protocol encodes a response into one buffer, copying every
//! partition's `records`. A Fetch instead gives each partition a stand-in
//! for its records: a slice, of the right length, of a static region that
//! holds no data ([`Splices::records`]). The encoder writes into a
//! [`ChunkedBuf`], which copies the response's structure as usual and, when
//! it is handed a stand-in, puts the partition's stored chunks in its place
//! instead. The stand-ins are told apart by their place in the region, so
//! the order the encoder meets them in does not matter.
//!
//! Why by hand: the codec has no way to write part of a message by
//! reference; this is the one place that needs it.

use std::ops::Range;

use bytes::{buf::UninitSlice, BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// The stand-ins' region: the most record bytes one response splices. A
/// response with more (past a 64 MiB `fetch.max.bytes`) has its remaining
/// records copied. Zeroed static memory: address space, never written, so
/// never resident.
const REGION_BYTES: usize = 64 << 20;
static REGION: [u8; REGION_BYTES] = [0; REGION_BYTES];

/// Chunks below this size are copied into the response's buffer instead of
/// being written on their own (a write each would cost more).
const COPY_BELOW: usize = 4096;

/// The records of a response's partitions, by their stand-in's place.
#[derive(Debug, Default)]
pub struct Splices {
    next: usize,
    /// (start in the region, the chunks), in increasing start order.
    parts: Vec<(usize, Vec<Bytes>)>,
}

impl Splices {
    /// The `records` value for a partition whose records are `chunks`, in
    /// order: a stand-in of their length, spliced when the response is
    /// encoded into a [`ChunkedBuf`] ([`Self::into_buf`]); or the bytes
    /// themselves when there is one chunk, none, or no room left.
    pub fn records(&mut self, chunks: Vec<Bytes>) -> Bytes {
        let len: usize = chunks.iter().map(Bytes::len).sum();
        if len == 0 {
            return Bytes::new();
        }
        if self.next + len > REGION_BYTES {
            let mut out = BytesMut::with_capacity(len);
            for c in &chunks {
                out.extend_from_slice(c);
            }
            return out.freeze();
        }
        let start = self.next;
        self.next += len;
        self.parts.push((start, chunks));
        Bytes::from_static(&REGION[start..start + len])
    }

    /// A buffer to encode the response into, with `capacity` for its
    /// structure.
    pub fn into_buf(self, capacity: usize) -> ChunkedBuf {
        ChunkedBuf {
            chunks: Vec::new(),
            current: BytesMut::with_capacity(capacity),
            splices: self,
            written: 0,
            lost: None,
        }
    }
}

/// A response being encoded: chunks already complete, and the buffer being
/// filled.
#[derive(Debug)]
pub struct ChunkedBuf {
    chunks: Vec<Bytes>,
    current: BytesMut,
    splices: Splices,
    /// Bytes in `chunks`.
    written: usize,
    /// A stand-in the encoder wrote that matches no partition (a bug).
    lost: Option<String>,
}

impl ChunkedBuf {
    /// The response's chunks, in order; an error if a stand-in was written
    /// that matches no partition's records.
    pub fn finish(mut self) -> Result<Vec<Bytes>, String> {
        if let Some(lost) = self.lost {
            return Err(lost);
        }
        self.flush();
        Ok(self.chunks)
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            let done = self.current.split().freeze();
            self.written += done.len();
            self.chunks.push(done);
        }
    }

    /// Writes the stored chunks of the stand-in `src` in its place.
    fn splice(&mut self, src: &[u8]) {
        let start = src.as_ptr() as usize - REGION.as_ptr() as usize;
        let found = self.splices.parts.binary_search_by_key(&start, |(s, _)| *s);
        let Ok(index) = found else {
            self.lost = Some(format!("a stand-in at {start} of {} bytes matches no partition", src.len()));
            return;
        };
        let chunks = std::mem::take(&mut self.splices.parts[index].1);
        let len: usize = chunks.iter().map(Bytes::len).sum();
        if len != src.len() {
            self.lost = Some(format!("a stand-in of {} bytes for records of {len}", src.len()));
            return;
        }
        for chunk in chunks {
            if chunk.len() < COPY_BELOW {
                self.current.extend_from_slice(&chunk);
            } else {
                self.flush();
                self.written += chunk.len();
                self.chunks.push(chunk);
            }
        }
    }
}

fn in_region(src: &[u8]) -> bool {
    let (base, at) = (REGION.as_ptr() as usize, src.as_ptr() as usize);
    !src.is_empty() && at >= base && at + src.len() <= base + REGION_BYTES
}

// SAFETY: every method that exposes or advances the writable part defers to
// `current`, a `BytesMut`, which upholds `BufMut`'s contract itself.
unsafe impl BufMut for ChunkedBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise about `cnt` is about `chunk_mut`,
        // which is `current`'s.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if in_region(src) {
            self.splice(src);
        } else {
            self.current.extend_from_slice(src);
        }
    }
}

impl ByteBufMut for ChunkedBuf {
    fn offset(&self) -> usize {
        self.written + self.current.len()
    }

    // The codec uses these only for gaps, which no message it encodes has;
    // they work within the buffer being filled.
    fn seek(&mut self, offset: usize) {
        self.current.resize(offset.saturating_sub(self.written), 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let from = r.start.saturating_sub(self.written);
        let to = r.end.saturating_sub(self.written);
        &mut self.current[from..to]
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::{
        messages::{
            fetch_response::{FetchableTopicResponse, PartitionData},
            FetchResponse, TopicName,
        },
        protocol::{Encodable, StrBytes},
    };

    use super::*;

    fn response(version: i16, records: impl Fn(usize) -> Bytes) -> FetchResponse {
        let partition =
            |i: usize| PartitionData::default().with_partition_index(i as i32).with_records(Some(records(i)));
        let topic = |name: &str, from: usize| {
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_string(name.to_owned())))
                .with_partitions((from..from + 2).map(partition).collect())
        };
        // Sessions are from version 7 on.
        let session = if version >= 7 { 7 } else { 0 };
        FetchResponse::default().with_session_id(session).with_responses(vec![topic("a", 0), topic("b", 2)])
    }

    fn chunks(i: usize) -> Vec<Bytes> {
        // A large chunk (written on its own), a small one (copied), another large.
        vec![Bytes::from(vec![i as u8; 5000]), Bytes::from(vec![0xa0 + i as u8; 10]), Bytes::from(vec![0xf0; 4096 + i])]
    }

    #[test]
    fn a_spliced_response_is_byte_for_byte_the_copied_one() {
        for version in crate::apis::fetch::VERSIONS.min..=crate::apis::fetch::VERSIONS.max {
            let whole = |i: usize| {
                let mut b = BytesMut::new();
                for c in chunks(i) {
                    b.extend_from_slice(&c);
                }
                b.freeze()
            };
            let mut expected = BytesMut::new();
            response(version, whole).encode(&mut expected, version).expect("encodes");
            let mut splices = Splices::default();
            let stand_ins: Vec<Bytes> = (0..4).map(|i| splices.records(chunks(i))).collect();
            let mut buf = splices.into_buf(1024);
            response(version, |i| stand_ins[i].clone()).encode(&mut buf, version).expect("encodes");
            let out = buf.finish().expect("every stand-in spliced");
            assert!(out.len() > 4, "large chunks are written on their own (version {version})");
            let joined: Vec<u8> = out.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(joined, expected.to_vec(), "version {version}");
        }
    }

    #[test]
    fn a_stand_in_that_matches_nothing_is_an_error_not_zeros() {
        let mut other = Splices::default();
        let stray = other.records(chunks(0));
        let mut buf = Splices::default().into_buf(64);
        buf.put_slice(&stray);
        assert!(buf.finish().is_err());
    }
}
