//! The byte layout of segment and index files (docs/storage.md is the prose
//! version of this module; keep them in step).
//!
//! All integers are little-endian. Every structure carries a CRC32C so that a
//! torn or corrupted write is detected, never interpreted.

use bytes::{Buf, BufMut};

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"PPLEDGR1";
/// First bytes of every index file.
pub const INDEX_MAGIC: [u8; 8] = *b"PPINDEX1";
/// Layout version written in headers. Version 2 moved the payload CRC into
/// the entry header; a version-1 segment is refused (Corrupt), never misread.
pub const FORMAT_VERSION: u32 = 2;
/// Size of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Size of an entry header; the payload follows it.
pub const ENTRY_HEADER_LEN: usize = 48;
/// Marks the start of an entry ("ENTR" in little-endian bytes).
pub const ENTRY_MAGIC: u32 = u32::from_le_bytes(*b"ENTR");
/// Size of one index point.
pub const INDEX_POINT_LEN: usize = 32;
/// Size of the fixed part of an index file (before its points).
pub const INDEX_HEADER_LEN: usize = 72;

/// The header at the start of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The ledger id (unique within the topic, increasing).
    pub ledger_id: u64,
    /// Offset of the first message this segment may hold.
    pub base_offset: u64,
    /// Creation time, Unix milliseconds (for age-based rolls).
    pub created_ms: i64,
    /// Bytes reserved for the file (the segment's capacity).
    pub capacity: u64,
}

impl SegmentHeader {
    /// Encodes the header (64 bytes).
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        let mut b = &mut out[..];
        b.put_slice(&SEGMENT_MAGIC);
        b.put_u32_le(FORMAT_VERSION);
        b.put_u32_le(SEGMENT_HEADER_LEN as u32);
        b.put_u64_le(self.ledger_id);
        b.put_u64_le(self.base_offset);
        b.put_i64_le(self.created_ms);
        b.put_u64_le(self.capacity);
        let crc = crc32c::crc32c(&out[..60]);
        out[60..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a header; `None` if it is not a valid header.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < SEGMENT_HEADER_LEN || bytes[..8] != SEGMENT_MAGIC {
            return None;
        }
        let stored = u32::from_le_bytes(bytes[60..64].try_into().ok()?);
        if crc32c::crc32c(&bytes[..60]) != stored {
            return None;
        }
        let mut b = &bytes[8..60];
        let (version, len) = (b.get_u32_le(), b.get_u32_le());
        if version != FORMAT_VERSION || len as usize != SEGMENT_HEADER_LEN {
            return None;
        }
        Some(Self {
            ledger_id: b.get_u64_le(),
            base_offset: b.get_u64_le(),
            created_ms: b.get_i64_le(),
            capacity: b.get_u64_le(),
        })
    }
}

/// What the ledger knows about an entry besides its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryMeta {
    /// Offset of the entry's first message.
    pub base_offset: u64,
    /// Number of messages in the entry (at least 1).
    pub count: u32,
    /// Who wrote the payload and how to read it (owned by the writer, opaque here).
    pub format: u16,
    /// Reserved for the writer's flags.
    pub flags: u16,
    /// When the broker appended it, Unix milliseconds.
    pub publish_time_ms: i64,
    /// Largest message timestamp in the entry, Unix milliseconds.
    pub max_timestamp_ms: i64,
}

impl EntryMeta {
    /// The offset after the entry's last message.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.count)
    }
}

/// Writes the header of an entry whose payload is `payload_len` bytes with
/// CRC32C `payload_crc` into `out` (48 bytes); returns the header CRC stored
/// in it. The payload's CRC sits in the header (bytes 28..32), and the header
/// CRC (bytes 8..12) covers bytes 12..48: one CRC chain protects both, and the
/// single writer never reads a payload byte (callers compute payload CRCs).
pub fn encode_entry_header_with_crc(meta: &EntryMeta, payload_len: usize, payload_crc: u32, out: &mut Vec<u8>) -> u32 {
    let start = out.len();
    out.put_u32_le(ENTRY_MAGIC);
    out.put_u32_le(payload_len as u32);
    out.put_u32_le(0); // header CRC, filled below
    out.put_u16_le(meta.format);
    out.put_u16_le(meta.flags);
    out.put_u64_le(meta.base_offset);
    out.put_u32_le(meta.count);
    out.put_u32_le(payload_crc);
    out.put_i64_le(meta.publish_time_ms);
    out.put_i64_le(meta.max_timestamp_ms);
    let crc = crc32c::crc32c(&out[start + 12..start + ENTRY_HEADER_LEN]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    crc
}

/// Writes the header of an entry with `payload` into `out` (48 bytes) and
/// returns the CRC stored in it.
pub fn encode_entry_header(meta: &EntryMeta, payload: &[u8], out: &mut Vec<u8>) -> u32 {
    encode_entry_header_with_crc(meta, payload.len(), crc32c::crc32c(payload), out)
}

/// A decoded entry header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    /// Payload length.
    pub payload_len: u32,
    /// Stored CRC32C of header bytes 12..48 (which hold the payload's CRC).
    pub crc: u32,
    /// Stored CRC32C of the payload.
    pub payload_crc: u32,
    /// The metadata.
    pub meta: EntryMeta,
}

impl EntryHeader {
    /// Bytes taken by the entry, header included.
    pub fn total_len(&self) -> usize {
        ENTRY_HEADER_LEN + self.payload_len as usize
    }

    /// Decodes a header; `None` if the magic is wrong (end of data or garbage).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < ENTRY_HEADER_LEN {
            return None;
        }
        let mut b = &bytes[..ENTRY_HEADER_LEN];
        if b.get_u32_le() != ENTRY_MAGIC {
            return None;
        }
        let payload_len = b.get_u32_le();
        let crc = b.get_u32_le();
        let format = b.get_u16_le();
        let flags = b.get_u16_le();
        let base_offset = b.get_u64_le();
        let count = b.get_u32_le();
        let payload_crc = b.get_u32_le();
        let publish_time_ms = b.get_i64_le();
        let max_timestamp_ms = b.get_i64_le();
        Some(Self {
            payload_len,
            crc,
            payload_crc,
            meta: EntryMeta { base_offset, count, format, flags, publish_time_ms, max_timestamp_ms },
        })
    }

    /// Whether `header_bytes` (48) and `payload` match the stored CRCs.
    pub fn verify(&self, header_bytes: &[u8], payload: &[u8]) -> bool {
        self.verify_header(header_bytes) && crc32c::crc32c(payload) == self.payload_crc
    }

    /// Whether `header_bytes` (48) match the header CRC (the payload CRC it
    /// covers is not compared with the payload).
    pub fn verify_header(&self, header_bytes: &[u8]) -> bool {
        header_bytes.len() >= ENTRY_HEADER_LEN && crc32c::crc32c(&header_bytes[12..ENTRY_HEADER_LEN]) == self.crc
    }
}

/// One sparse index point: where an entry starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexPoint {
    /// The entry's base offset.
    pub offset: u64,
    /// The entry's byte position in the segment file.
    pub position: u64,
    /// The entry's id within the segment (0-based).
    pub entry_id: u64,
    /// Largest message timestamp up to and including this entry in the
    /// segment (a running maximum, so it can be binary-searched).
    pub max_timestamp_ms: i64,
}

/// The summary of a sealed segment, stored in its index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedIndex {
    /// The ledger id.
    pub ledger_id: u64,
    /// First offset of the segment.
    pub base_offset: u64,
    /// Offset after its last message.
    pub end_offset: u64,
    /// Bytes of valid data in the segment file, header included.
    pub data_len: u64,
    /// Number of entries.
    pub entries: u64,
    /// Largest message timestamp in the segment.
    pub max_timestamp_ms: i64,
    /// When the segment was sealed, Unix milliseconds.
    pub sealed_ms: i64,
    /// Sparse index points.
    pub points: Vec<IndexPoint>,
}

impl SealedIndex {
    /// Encodes the index file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(INDEX_HEADER_LEN + self.points.len() * INDEX_POINT_LEN + 4);
        out.put_slice(&INDEX_MAGIC);
        out.put_u32_le(FORMAT_VERSION);
        out.put_u32_le(self.points.len() as u32);
        out.put_u64_le(self.ledger_id);
        out.put_u64_le(self.base_offset);
        out.put_u64_le(self.end_offset);
        out.put_u64_le(self.data_len);
        out.put_u64_le(self.entries);
        out.put_i64_le(self.max_timestamp_ms);
        out.put_i64_le(self.sealed_ms);
        for p in &self.points {
            out.put_u64_le(p.offset);
            out.put_u64_le(p.position);
            out.put_u64_le(p.entry_id);
            out.put_i64_le(p.max_timestamp_ms);
        }
        let crc = crc32c::crc32c(&out);
        out.put_u32_le(crc);
        out
    }

    /// Decodes and checks an index file; `None` if it is torn or corrupt.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < INDEX_HEADER_LEN + 4 || bytes[..8] != INDEX_MAGIC {
            return None;
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut b = &body[8..];
        if b.get_u32_le() != FORMAT_VERSION {
            return None;
        }
        let n = b.get_u32_le() as usize;
        if body.len() != INDEX_HEADER_LEN + n * INDEX_POINT_LEN {
            return None;
        }
        let mut index = Self {
            ledger_id: b.get_u64_le(),
            base_offset: b.get_u64_le(),
            end_offset: b.get_u64_le(),
            data_len: b.get_u64_le(),
            entries: b.get_u64_le(),
            max_timestamp_ms: b.get_i64_le(),
            sealed_ms: b.get_i64_le(),
            points: Vec::with_capacity(n),
        };
        for _ in 0..n {
            index.points.push(IndexPoint {
                offset: b.get_u64_le(),
                position: b.get_u64_le(),
                entry_id: b.get_u64_le(),
                max_timestamp_ms: b.get_i64_le(),
            });
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_detect_flips() {
        let h = SegmentHeader { ledger_id: 7, base_offset: 100, created_ms: 5, capacity: 1 << 20 };
        let mut bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Some(h));
        bytes[20] ^= 1;
        assert_eq!(SegmentHeader::decode(&bytes), None);

        let meta =
            EntryMeta { base_offset: 9, count: 3, format: 1, flags: 0, publish_time_ms: 11, max_timestamp_ms: 12 };
        let mut out = Vec::new();
        encode_entry_header(&meta, b"payload", &mut out);
        let header = EntryHeader::decode(&out).expect("header");
        assert_eq!(header.meta, meta);
        assert_eq!(header.crc, crc32c::crc32c(&out[12..48]));
        assert_eq!(header.payload_crc, crc32c::crc32c(b"payload"));
        let mut flipped = out.clone();
        flipped[20] ^= 1;
        assert!(
            !EntryHeader::decode(&flipped).expect("decodes").verify(&flipped, b"payload"),
            "a header bit flip is caught"
        );
        assert!(header.verify(&out, b"payload"));
        assert!(!header.verify(&out, b"paylaad"));
    }

    #[test]
    fn index_round_trips_and_rejects_torn_files() {
        let index = SealedIndex {
            ledger_id: 1,
            base_offset: 0,
            end_offset: 10,
            data_len: 999,
            entries: 4,
            max_timestamp_ms: 77,
            sealed_ms: 78,
            points: vec![IndexPoint { offset: 0, position: 64, entry_id: 0, max_timestamp_ms: 5 }],
        };
        let bytes = index.encode();
        assert_eq!(SealedIndex::decode(&bytes), Some(index));
        assert_eq!(SealedIndex::decode(&bytes[..bytes.len() - 1]), None);
    }
}
