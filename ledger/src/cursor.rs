//! Cursors: where a subscription (Pulsar) or a consumer group (Kafka) is in a
//! ledger. A cursor has a mark-delete offset (every offset below it is
//! acknowledged) and individually acknowledged ranges above it.
//!
//! Durable cursors are saved to `cursors/<name>.cur` (atomic replace, CRC),
//! at most every `cursor_flush_interval` and when the ledger closes: an
//! acknowledgement is answered at once, and a crash can forget at most the
//! last interval's acknowledgements (those messages are delivered again).
//! Non-durable cursors (readers) live in memory only.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut};

/// Where a new cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    /// At the first stored offset.
    Earliest,
    /// At the end: only messages appended from now on.
    Latest,
    /// At this offset (clamped to the stored range).
    Offset(u64),
}

/// An acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Everything below this offset (exclusive) is acknowledged.
    Cumulative(u64),
    /// These offset ranges `[start, end)` are acknowledged.
    Individual(Vec<(u64, u64)>),
}

/// A cursor's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorState {
    /// Every offset below this is acknowledged.
    pub mark_delete: u64,
    /// Acknowledged ranges `[start, end)` above `mark_delete`, disjoint, sorted.
    pub acked: BTreeMap<u64, u64>,
    /// Saved across restarts.
    pub durable: bool,
}

/// A cursor as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorInfo {
    /// The cursor's name (subscription or group).
    pub name: String,
    /// Saved across restarts.
    pub durable: bool,
    /// Every offset below this is acknowledged.
    pub mark_delete: u64,
    /// Acknowledged ranges above `mark_delete`.
    pub acked_ranges: Vec<(u64, u64)>,
    /// Entries from the one holding `mark_delete` to the end of the log.
    pub backlog_entries: u64,
    /// Messages not yet acknowledged.
    pub backlog_messages: u64,
}

impl CursorInfo {
    /// Whether every offset of `[base, end)` is acknowledged.
    pub fn covers(&self, base: u64, end: u64) -> bool {
        end <= self.mark_delete || self.acked_ranges.iter().any(|(s, e)| *s <= base && end <= *e)
    }
}

impl CursorState {
    /// A cursor at `offset`.
    pub fn at(offset: u64, durable: bool) -> Self {
        Self { mark_delete: offset, acked: BTreeMap::new(), durable }
    }

    /// Applies `ack`; offsets at or past `end` are ignored. Returns whether anything changed.
    pub fn apply(&mut self, ack: &Ack, end: u64) -> bool {
        let before = (self.mark_delete, self.acked.clone());
        match ack {
            Ack::Cumulative(offset) => self.mark_delete = self.mark_delete.max((*offset).min(end)),
            Ack::Individual(ranges) => {
                for &(start, stop) in ranges {
                    let (start, stop) = (start.max(self.mark_delete), stop.min(end));
                    if start < stop {
                        self.insert(start, stop);
                    }
                }
            }
        }
        self.normalise();
        before != (self.mark_delete, self.acked.clone())
    }

    fn insert(&mut self, mut start: u64, mut stop: u64) {
        // Merge with every overlapping or touching range.
        let overlapping: Vec<(u64, u64)> =
            self.acked.range(..=stop).filter(|(_, e)| **e >= start).map(|(s, e)| (*s, *e)).collect();
        for (s, e) in overlapping {
            self.acked.remove(&s);
            start = start.min(s);
            stop = stop.max(e);
        }
        self.acked.insert(start, stop);
    }

    /// Folds ranges that reach the mark-delete into it and drops those below it.
    fn normalise(&mut self) {
        while let Some((&s, &e)) = self.acked.first_key_value() {
            if s > self.mark_delete {
                break;
            }
            self.acked.remove(&s);
            self.mark_delete = self.mark_delete.max(e);
        }
    }

    /// Acknowledged messages above the mark-delete.
    pub fn acked_above(&self) -> u64 {
        self.acked.iter().map(|(s, e)| e - s).sum()
    }

    /// Moves the cursor to `offset`, forgetting individual acknowledgements.
    pub fn seek(&mut self, offset: u64) {
        self.mark_delete = offset;
        self.acked.clear();
    }
}

const MAGIC: [u8; 8] = *b"PPCURSR1";
const VERSION: u32 = 1;

/// Encodes a durable cursor's file: magic, version, mark-delete, ranges, CRC32C.
pub(crate) fn encode(state: &CursorState) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + state.acked.len() * 16);
    out.put_slice(&MAGIC);
    out.put_u32_le(VERSION);
    out.put_u64_le(state.mark_delete);
    out.put_u32_le(state.acked.len() as u32);
    for (s, e) in &state.acked {
        out.put_u64_le(*s);
        out.put_u64_le(*e);
    }
    let crc = crc32c::crc32c(&out);
    out.put_u32_le(crc);
    out
}

/// Decodes a cursor file; `None` if it is torn or corrupt.
pub(crate) fn decode(bytes: &[u8]) -> Option<CursorState> {
    if bytes.len() < 28 || bytes[..8] != MAGIC {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut b = &body[8..];
    if b.get_u32_le() != VERSION {
        return None;
    }
    let mark_delete = b.get_u64_le();
    let n = b.get_u32_le() as usize;
    if b.remaining() != n * 16 {
        return None;
    }
    let mut acked = BTreeMap::new();
    for _ in 0..n {
        acked.insert(b.get_u64_le(), b.get_u64_le());
    }
    Some(CursorState { mark_delete, acked, durable: true })
}

/// The file name for cursor `name`: anything outside `[A-Za-z0-9._-]` is %-escaped.
pub(crate) fn file_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(".cur");
    out
}

/// The cursor name of a file name made by [`file_name`].
pub(crate) fn name_of(file: &str) -> Option<String> {
    let stem = file.strip_suffix(".cur")?;
    let bytes = stem.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn individual_acks_merge_and_advance_the_mark_delete() {
        let mut c = CursorState::at(0, true);
        c.apply(&Ack::Individual(vec![(2, 3), (4, 6)]), 100);
        assert_eq!(c.mark_delete, 0);
        assert_eq!(c.acked_above(), 3);
        c.apply(&Ack::Individual(vec![(0, 2)]), 100);
        assert_eq!(c.mark_delete, 3, "0..3 is contiguous now");
        c.apply(&Ack::Individual(vec![(3, 4)]), 100);
        assert_eq!((c.mark_delete, c.acked.len()), (6, 0));
        c.apply(&Ack::Cumulative(50), 40);
        assert_eq!(c.mark_delete, 40, "never past the end of the log");
        assert!(!c.apply(&Ack::Cumulative(10), 100), "cumulative acks never move back");
    }

    #[test]
    fn files_round_trip_and_names_escape() {
        let mut c = CursorState::at(7, true);
        c.apply(&Ack::Individual(vec![(9, 12)]), 100);
        let bytes = encode(&c);
        assert_eq!(decode(&bytes), Some(c));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        let name = "group/with spaces:and%";
        assert_eq!(name_of(&file_name(name)).as_deref(), Some(name));
    }
}
