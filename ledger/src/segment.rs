//! One segment ("ledger" in Pulsar's terms): a file of entries with a sparse
//! in-memory index. Recovery, positioning and entry iteration live here; the
//! writer task owns the tail, readers see only what it has published.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock, RwLockReadGuard},
};

use bytes::Bytes;

use crate::{
    backend::{Backend, SegmentFile},
    format::{EntryHeader, EntryMeta, IndexPoint, SealedIndex, SegmentHeader, ENTRY_HEADER_LEN, SEGMENT_HEADER_LEN},
    LedgerError,
};

/// What readers may see of a segment: published by the writer.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    /// Bytes of visible data, header included.
    pub data_len: u64,
    /// Offset after the last visible message.
    pub end_offset: u64,
    /// Number of visible entries.
    pub entries: u64,
    /// Largest message timestamp so far.
    pub max_timestamp_ms: i64,
    /// Sparse index points (running-max timestamps).
    pub points: Vec<IndexPoint>,
    /// No more appends will come.
    pub sealed: bool,
    /// When the last entry was appended (publish time), Unix ms.
    pub last_append_ms: i64,
}

impl Published {
    /// A sealed segment's state, as its index file keeps it.
    pub fn from_index(index: SealedIndex) -> Self {
        Self {
            data_len: index.data_len,
            end_offset: index.end_offset,
            entries: index.entries,
            max_timestamp_ms: index.max_timestamp_ms,
            points: index.points,
            sealed: true,
            last_append_ms: index.sealed_ms,
        }
    }
}

/// A segment file and what is published of it.
pub(crate) struct Segment {
    pub header: SegmentHeader,
    pub path: PathBuf,
    pub file: Arc<dyn SegmentFile>,
    published: RwLock<Published>,
    /// A placeholder for a segment in the object store (`remote.rs`).
    pub remote: Option<Arc<crate::remote::RemoteFile>>,
}

/// One entry read from a segment.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The segment's ledger id.
    pub ledger_id: u64,
    /// The entry's id within its segment.
    pub entry_id: u64,
    /// Its metadata.
    pub meta: EntryMeta,
    /// Its payload (shared, not copied).
    pub payload: Bytes,
    /// The CRC32C of the payload, as stored (checked when the entry was
    /// read from the disk; a protocol whose frames carry the same checksum
    /// sends it on instead of computing it again).
    pub payload_crc: u32,
}

pub(crate) fn segment_path(dir: &Path, ledger_id: u64) -> PathBuf {
    dir.join(format!("{ledger_id:020}.log"))
}

pub(crate) fn index_path(dir: &Path, ledger_id: u64) -> PathBuf {
    dir.join(format!("{ledger_id:020}.idx"))
}

/// How a recovery scan ended.
pub(crate) struct Scan {
    pub published: Published,
    /// Non-zero bytes after the last valid entry (a torn or corrupt tail).
    pub garbage_at: Option<(u64, String)>,
}

impl Segment {
    /// Creates a new, empty segment file and writes its header durably.
    pub fn create(
        backend: &dyn Backend,
        dir: &Path,
        header: SegmentHeader,
        now_ms: i64,
    ) -> Result<Arc<Self>, LedgerError> {
        let path = segment_path(dir, header.ledger_id);
        let file = backend
            .create(&path, header.capacity)
            .map_err(|e| LedgerError::io(format!("create {}", path.display()), e))?;
        file.write_at(0, &header.encode()).map_err(|e| LedgerError::io(format!("write {}", path.display()), e))?;
        file.sync().map_err(|e| LedgerError::io(format!("sync {}", path.display()), e))?;
        let published = Published {
            data_len: SEGMENT_HEADER_LEN as u64,
            end_offset: header.base_offset,
            entries: 0,
            max_timestamp_ms: -1,
            points: Vec::new(),
            sealed: false,
            last_append_ms: now_ms,
        };
        Ok(Arc::new(Self { header, path, file, published: RwLock::new(published), remote: None }))
    }

    /// Opens an existing segment file, checking its header.
    pub fn open_file(
        ledger: &str,
        backend: &dyn Backend,
        path: &Path,
    ) -> Result<(SegmentHeader, Arc<dyn SegmentFile>), LedgerError> {
        let file = backend.open(path).map_err(|e| LedgerError::io(format!("open {}", path.display()), e))?;
        let corrupt = |reason: &str| LedgerError::Corrupt {
            ledger: ledger.to_owned(),
            file: path.to_owned(),
            position: 0,
            reason: reason.to_owned(),
        };
        if file.capacity() < SEGMENT_HEADER_LEN as u64 {
            return Err(corrupt("file is shorter than a segment header"));
        }
        let bytes =
            file.read(0, SEGMENT_HEADER_LEN).map_err(|e| LedgerError::io(format!("read {}", path.display()), e))?;
        let header =
            SegmentHeader::decode(&bytes).ok_or_else(|| corrupt("invalid segment header (magic, version or CRC)"))?;
        Ok((header, file))
    }

    /// A segment from its parts and published state.
    pub fn from_parts(
        header: SegmentHeader,
        path: PathBuf,
        file: Arc<dyn SegmentFile>,
        published: Published,
    ) -> Arc<Self> {
        Arc::new(Self { header, path, file, published: RwLock::new(published), remote: None })
    }

    /// A placeholder for `remote`'s segment: its offsets, entries and
    /// times, one index point at its first entry, bytes fetched on first
    /// read.
    pub fn placeholder(remote: Arc<crate::remote::RemoteFile>, dir: &Path) -> Arc<Self> {
        let s = &remote.segment;
        let header = SegmentHeader {
            ledger_id: s.ledger_id,
            base_offset: s.base_offset,
            created_ms: s.created_ms,
            capacity: remote.capacity(),
        };
        let published = Published {
            data_len: s.bytes,
            end_offset: s.end_offset,
            entries: s.entries,
            max_timestamp_ms: s.max_timestamp_ms,
            points: vec![IndexPoint {
                offset: s.base_offset,
                position: SEGMENT_HEADER_LEN as u64,
                entry_id: 0,
                max_timestamp_ms: s.max_timestamp_ms,
            }],
            sealed: true,
            last_append_ms: s.max_timestamp_ms.max(s.created_ms),
        };
        let file: Arc<dyn SegmentFile> = Arc::clone(&remote) as Arc<dyn SegmentFile>;
        Arc::new(Self {
            header,
            path: segment_path(dir, s.ledger_id),
            file,
            published: RwLock::new(published),
            remote: Some(remote),
        })
    }

    /// A placeholder whose bytes are fetched: true when it should give way
    /// to an ordinary segment ([`crate::Shared::promote_fetched`]).
    pub fn is_fetched_placeholder(&self) -> bool {
        self.remote.as_ref().is_some_and(|r| r.is_fetched())
    }

    /// A placeholder whose bytes are not here.
    pub fn is_unfetched_placeholder(&self) -> bool {
        self.remote.as_ref().is_some_and(|r| !r.is_fetched())
    }

    /// Scans entries from the header on, checking each CRC and that offsets
    /// follow each other, until the data ends or stops making sense.
    pub fn scan(header: &SegmentHeader, file: &dyn SegmentFile, index_interval: u64) -> Scan {
        let mut p = Published {
            data_len: SEGMENT_HEADER_LEN as u64,
            end_offset: header.base_offset,
            entries: 0,
            max_timestamp_ms: -1,
            points: Vec::new(),
            sealed: false,
            last_append_ms: header.created_ms,
        };
        let capacity = file.capacity();
        let mut last_point_pos = 0u64;
        // Read by windows: one mapping per window, not two per entry.
        let (mut window, mut window_pos) = (Bytes::new(), p.data_len);
        let fetch = |pos: u64, need: usize, window: &mut Bytes, window_pos: &mut u64| -> Option<()> {
            let have = (*window_pos..*window_pos + window.len() as u64).contains(&pos)
                && *window_pos + window.len() as u64 >= pos + need as u64;
            if !have {
                let len = (capacity - pos).min(WINDOW.max(need as u64)) as usize;
                *window = file.read(pos, len).ok()?;
                *window_pos = pos;
            }
            Some(())
        };
        loop {
            let pos = p.data_len;
            if pos + ENTRY_HEADER_LEN as u64 > capacity
                || fetch(pos, ENTRY_HEADER_LEN, &mut window, &mut window_pos).is_none()
            {
                return Scan { published: p, garbage_at: None };
            }
            let at = (pos - window_pos) as usize;
            let head = window.slice(at..at + ENTRY_HEADER_LEN);
            let garbage = |why: &str| if head.iter().all(|b| *b == 0) { None } else { Some((pos, why.to_owned())) };
            let Some(h) = EntryHeader::decode(&head) else {
                return Scan { garbage_at: garbage("no entry header"), published: p };
            };
            if pos + h.total_len() as u64 > capacity {
                return Scan { garbage_at: garbage("entry runs past the end of the file"), published: p };
            }
            if fetch(pos, h.total_len(), &mut window, &mut window_pos).is_none() {
                return Scan { garbage_at: garbage("unreadable payload"), published: p };
            }
            let at = (pos - window_pos) as usize;
            let payload = window.slice(at + ENTRY_HEADER_LEN..at + h.total_len());
            if !h.verify(&window[at..at + ENTRY_HEADER_LEN], &payload) {
                return Scan { garbage_at: garbage("CRC mismatch"), published: p };
            }
            if h.meta.base_offset != p.end_offset || h.meta.count == 0 {
                return Scan { garbage_at: garbage("offset does not follow the previous entry"), published: p };
            }
            p.max_timestamp_ms = p.max_timestamp_ms.max(h.meta.max_timestamp_ms);
            if p.points.is_empty() || pos - last_point_pos >= index_interval {
                p.points.push(IndexPoint {
                    offset: h.meta.base_offset,
                    position: pos,
                    entry_id: p.entries,
                    max_timestamp_ms: p.max_timestamp_ms,
                });
                last_point_pos = pos;
            }
            p.end_offset = h.meta.next_offset();
            p.entries += 1;
            p.data_len = pos + h.total_len() as u64;
            p.last_append_ms = h.meta.publish_time_ms;
        }
    }

    /// The published state, read-locked briefly.
    pub fn published(&self) -> RwLockReadGuard<'_, Published> {
        self.published.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the published state.
    pub fn snapshot(&self) -> Published {
        self.published().clone()
    }

    /// Replaces the published state (writer only).
    pub fn publish(&self, update: impl FnOnce(&mut Published)) {
        let mut guard = self.published.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        update(&mut guard);
    }

    /// The summary written to the index file when the segment is sealed.
    pub fn sealed_index(&self, sealed_ms: i64) -> SealedIndex {
        let p = self.published();
        SealedIndex {
            ledger_id: self.header.ledger_id,
            base_offset: self.header.base_offset,
            end_offset: p.end_offset,
            data_len: p.data_len,
            entries: p.entries,
            max_timestamp_ms: p.max_timestamp_ms,
            sealed_ms,
            points: p.points.clone(),
        }
    }

    /// The entries from `pos` (entry `entry_id`) to `data_len`, each CRC-checked.
    /// Reads go by windows of at least [`WINDOW`] bytes, so iterating
    /// allocates nothing per entry: payloads are slices of a shared window.
    pub fn entries_from<'a>(
        &'a self,
        ledger: &'a str,
        pos: u64,
        entry_id: u64,
        data_len: u64,
    ) -> Result<EntryIter<'a>, LedgerError> {
        Ok(EntryIter {
            segment: self,
            ledger,
            window: Bytes::new(),
            written_here: false,
            base: pos,
            at: 0,
            entry_id,
            data_len,
            cached_only: crate::nonblocking::active(),
            blocked: false,
        })
    }

    /// The index point to start scanning from for `offset` (the last point at or before it).
    pub fn point_for_offset(points: &[IndexPoint], offset: u64) -> Option<IndexPoint> {
        let i = points.partition_point(|p| p.offset <= offset);
        i.checked_sub(1).map(|i| points[i])
    }

    /// The index point to start scanning from for the first entry whose
    /// timestamp is at least `ts`.
    pub fn point_for_time(points: &[IndexPoint], ts: i64) -> Option<IndexPoint> {
        let first_reaching = points.partition_point(|p| p.max_timestamp_ms < ts);
        // Entries before the previous point are all older than `ts`.
        first_reaching.checked_sub(1).map(|i| points[i]).or_else(|| points.first().copied())
    }

    /// The index point to start scanning from for `entry_id`.
    pub fn point_for_entry(points: &[IndexPoint], entry_id: u64) -> Option<IndexPoint> {
        let i = points.partition_point(|p| p.entry_id <= entry_id);
        i.checked_sub(1).map(|i| points[i])
    }
}

/// Bytes read at once by [`EntryIter`] (more when an entry is larger).
pub(crate) const WINDOW: u64 = 1 << 20;

/// Iterates a segment's entries over shared windows; see [`Segment::entries_from`].
pub(crate) struct EntryIter<'a> {
    segment: &'a Segment,
    ledger: &'a str,
    /// The bytes from `base` on that are read.
    window: Bytes,
    /// The window holds bytes this process wrote, still in its tail cache:
    /// their payload CRCs are not computed again (header CRCs still are).
    written_here: bool,
    base: u64,
    /// Position of the next entry within `window`.
    at: usize,
    entry_id: u64,
    data_len: u64,
    /// Stop instead of reading what is not in memory (created inside
    /// [`crate::nonblocking::attempt`]).
    cached_only: bool,
    /// A cached-only iteration stopped before bytes it would have to read.
    blocked: bool,
}

impl EntryIter<'_> {
    /// The file position of the next entry.
    pub fn file_position(&self) -> u64 {
        self.base + self.at as u64
    }

    /// Makes sure `need` bytes from the next entry are in the window, reading
    /// a new window there if not; false if the data ends first.
    fn ensure(&mut self, need: usize) -> Result<bool, LedgerError> {
        if self.window.len() - self.at >= need {
            return Ok(true);
        }
        let pos = self.file_position();
        let available = self.data_len.saturating_sub(pos);
        if available < need as u64 {
            return Ok(false);
        }
        let len = available.min(WINDOW.max(need as u64)) as usize;
        let path = &self.segment.path;
        (self.window, self.written_here) = if self.cached_only {
            match self.segment.file.read_cached(pos, need, len) {
                Some(window) => window,
                None => {
                    self.blocked = true;
                    crate::nonblocking::would_block();
                    return Ok(false);
                }
            }
        } else {
            self.segment
                .file
                .read_window(pos, need, len)
                .map_err(|e| LedgerError::io(format!("read {}", path.display()), e))?
        };
        self.base = pos;
        self.at = 0;
        Ok(true)
    }

    fn corrupt(&self, reason: String) -> LedgerError {
        LedgerError::Corrupt {
            ledger: self.ledger.to_owned(),
            file: self.segment.path.clone(),
            position: self.file_position(),
            reason,
        }
    }
}

impl EntryIter<'_> {
    /// Ends the iteration with a corruption error at the current position.
    fn stop(&mut self, reason: String) -> Option<Result<Entry, LedgerError>> {
        let e = self.corrupt(reason);
        self.fail(e)
    }

    fn fail(&mut self, e: LedgerError) -> Option<Result<Entry, LedgerError>> {
        self.data_len = self.file_position();
        Some(Err(e))
    }
}

impl Iterator for EntryIter<'_> {
    type Item = Result<Entry, LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.file_position() >= self.data_len {
            return None;
        }
        match self.ensure(ENTRY_HEADER_LEN) {
            Ok(true) => {}
            Ok(false) if self.blocked => return None,
            Ok(false) => return self.stop(format!("entry {} header runs past the end of the data", self.entry_id)),
            Err(e) => return self.fail(e),
        }
        let Some(h) = EntryHeader::decode(&self.window[self.at..]) else {
            return self.stop(format!("no entry header for entry {}", self.entry_id));
        };
        match self.ensure(h.total_len()) {
            Ok(true) => {}
            Ok(false) if self.blocked => return None,
            Ok(false) => return self.stop(format!("entry {} runs past the end of the data", self.entry_id)),
            Err(e) => return self.fail(e),
        }
        let head = &self.window[self.at..];
        let payload = self.window.slice(self.at + ENTRY_HEADER_LEN..self.at + h.total_len());
        // Debug builds (the tests) check cached payloads too, so that a
        // wrong CRC handed to `append_checked` fails at once, not after a
        // restart.
        let valid =
            if self.written_here && !cfg!(debug_assertions) { h.verify_header(head) } else { h.verify(head, &payload) };
        if !valid {
            return self.stop(format!("CRC mismatch in entry {}", self.entry_id));
        }
        let entry = Entry {
            ledger_id: self.segment.header.ledger_id,
            entry_id: self.entry_id,
            meta: h.meta,
            payload,
            payload_crc: h.payload_crc,
        };
        self.at += h.total_len();
        self.entry_id += 1;
        Some(Ok(entry))
    }
}
