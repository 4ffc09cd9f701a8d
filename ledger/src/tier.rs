//! Segments as whole objects, for tiered storage: a sealed segment's bytes
//! go out as they are on the disk (the file is self-describing: its header
//! names its ledger id, base offset and creation time, and every entry
//! carries its CRC), and come back into a ledger directory before the
//! ledger opens. The host decides what to upload and where; this module
//! only knows files.

use std::{path::Path, sync::Arc};

use bytes::Bytes;

use crate::{
    backend::Backend,
    format::{SealedIndex, SegmentHeader, SEGMENT_HEADER_LEN},
    segment::{index_path, segment_path, Segment},
    LedgerError, ManagedLedger, SegmentInfo,
};

/// What identifies a segment file: the same three values mean the same
/// bytes (a segment is written by one owner, from one creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentId {
    /// Its ledger id.
    pub ledger_id: u64,
    /// Its first offset.
    pub base_offset: u64,
    /// When it was created, Unix ms.
    pub created_ms: i64,
}

/// Part of the active segment, as [`ManagedLedger::active_tail`] reads it.
#[derive(Debug, Clone)]
pub struct ActiveTail {
    /// The segment.
    pub id: SegmentId,
    /// Its bytes from the position asked for.
    pub bytes: Bytes,
    /// Where they end: the segment's published length.
    pub data_len: u64,
    /// The offset after its last published message.
    pub end_offset: u64,
}

impl SegmentId {
    /// The identity a segment header gives.
    pub(crate) fn of(header: &SegmentHeader) -> Self {
        Self { ledger_id: header.ledger_id, base_offset: header.base_offset, created_ms: header.created_ms }
    }
}

impl ManagedLedger {
    /// The bytes of sealed segment `ledger_id` as stored (its header and
    /// entries, without the unused capacity), with its description. Reads
    /// the disk: call it from a blocking thread.
    pub fn sealed_segment(&self, ledger_id: u64) -> Result<(SegmentInfo, SegmentId, Bytes), LedgerError> {
        let segment = self
            .shared
            .all_segments()
            .into_iter()
            .find(|s| s.header.ledger_id == ledger_id)
            .ok_or_else(|| LedgerError::NoSuchEntry { ledger: self.shared.name.clone(), ledger_id, entry_id: 0 })?;
        let p = segment.snapshot();
        if !p.sealed {
            return Err(LedgerError::InvalidEntry(format!(
                "segment {ledger_id} of {} is not sealed",
                self.shared.name
            )));
        }
        let len = usize::try_from(p.data_len)
            .map_err(|_| LedgerError::InvalidEntry(format!("segment {ledger_id} is too large for this machine")))?;
        let bytes =
            segment.file.read(0, len).map_err(|e| LedgerError::io(format!("read {}", segment.path.display()), e))?;
        let info = SegmentInfo {
            ledger_id,
            base_offset: segment.header.base_offset,
            end_offset: p.end_offset,
            bytes: p.data_len,
            entries: p.entries,
            max_timestamp_ms: p.max_timestamp_ms,
            last_append_ms: p.last_append_ms,
            sealed: true,
        };
        let id = SegmentId::of(&segment.header);
        Ok((info, id, bytes))
    }

    /// The active segment's bytes from position `from` to what is published
    /// now (from 0: its header too), for uploading it piece by piece before
    /// it seals. `None` if it holds nothing past `from`. Reads the disk:
    /// call it from a blocking thread.
    pub fn active_tail(&self, from: u64) -> Result<Option<ActiveTail>, LedgerError> {
        let Some(segment) = self.shared.all_segments().pop() else { return Ok(None) };
        let p = segment.snapshot();
        if p.sealed || p.entries == 0 || p.data_len <= from {
            return Ok(None);
        }
        let len = usize::try_from(p.data_len - from)
            .map_err(|_| LedgerError::InvalidEntry("segment tail too large for this machine".into()))?;
        let bytes =
            segment.file.read(from, len).map_err(|e| LedgerError::io(format!("read {}", segment.path.display()), e))?;
        Ok(Some(ActiveTail {
            id: SegmentId::of(&segment.header),
            bytes,
            data_len: p.data_len,
            end_offset: p.end_offset,
        }))
    }

    /// The identity of every segment, oldest first.
    pub fn segment_ids(&self) -> Vec<SegmentId> {
        self.shared.all_segments().iter().map(|s| SegmentId::of(&s.header)).collect()
    }
}

/// A segment file in a closed ledger directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSegment {
    /// The ledger id its name gives.
    pub ledger_id: u64,
    /// Its identity, if its header is readable.
    pub id: Option<SegmentId>,
    /// Where it ends, if it was sealed (its index file says so and agrees
    /// with the header); `None` for the active segment or a lost index.
    pub sealed_end: Option<u64>,
}

/// The segment files in ledger directory `dir` (closed), by ledger id.
pub fn local_segments(dir: &Path, backend: &dyn Backend) -> Result<Vec<LocalSegment>, LedgerError> {
    let files = match backend.list(dir) {
        Ok(files) => files,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LedgerError::io(format!("list {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for path in files {
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let Some(id) = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        let header = backend
            .open(&path)
            .ok()
            .filter(|f| f.capacity() >= SEGMENT_HEADER_LEN as u64)
            .and_then(|f| f.read(0, SEGMENT_HEADER_LEN).ok())
            .and_then(|b| SegmentHeader::decode(&b));
        let segment = header.as_ref().map(SegmentId::of);
        let sealed_end = backend
            .read_file(&index_path(dir, id))
            .ok()
            .and_then(|b| SealedIndex::decode(&b))
            .filter(|x| segment.is_some_and(|s| s.ledger_id == x.ledger_id && s.base_offset == x.base_offset))
            .map(|x| x.end_offset);
        out.push(LocalSegment { ledger_id: id, id: segment, sealed_end });
    }
    out.sort_unstable_by_key(|s| s.ledger_id);
    Ok(out)
}

/// Removes segment `ledger_id` (and its index) from closed ledger directory `dir`.
pub fn remove_segment(dir: &Path, backend: &dyn Backend, ledger_id: u64) -> Result<(), LedgerError> {
    let path = segment_path(dir, ledger_id);
    match backend.remove(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(LedgerError::io(format!("remove {}", path.display()), e)),
    }
    let _ = backend.remove(&index_path(dir, ledger_id));
    Ok(())
}

/// Writes `bytes`, a sealed segment as [`ManagedLedger::sealed_segment`]
/// gave them, into closed ledger directory `dir`, with its index, after
/// checking every entry: a damaged or truncated object is refused, never
/// stored. Returns what it holds.
pub fn import_segment(dir: &Path, backend: &dyn Backend, bytes: &[u8]) -> Result<SegmentInfo, LedgerError> {
    let header = bytes
        .get(..SEGMENT_HEADER_LEN)
        .and_then(SegmentHeader::decode)
        .ok_or_else(|| LedgerError::InvalidEntry("segment object: no valid segment header".into()))?;
    backend.create_dir_all(dir).map_err(|e| LedgerError::io(format!("create {}", dir.display()), e))?;
    let path = segment_path(dir, header.ledger_id);
    // Whole blocks, as the writer's files are (direct I/O reads need them);
    // the zeros after the data end the scan.
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().div_ceil(4096).max(1) * 4096, 0);
    backend.write_atomic(&path, &padded).map_err(|e| LedgerError::io(format!("write {}", path.display()), e))?;
    let file = backend.open(&path).map_err(|e| LedgerError::io(format!("open {}", path.display()), e))?;
    let scan = Segment::scan(&header, file.as_ref(), 4096);
    let refuse = |reason: String| {
        let _ = backend.remove(&path);
        LedgerError::Corrupt { ledger: dir.display().to_string(), file: path.clone(), position: 0, reason }
    };
    if let Some((position, why)) = scan.garbage_at {
        return Err(refuse(format!("segment object damaged at byte {position}: {why}")));
    }
    let mut p = scan.published;
    if p.data_len != bytes.len() as u64 || p.entries == 0 {
        return Err(refuse(format!("segment object holds {} bytes of entries of {}", p.data_len, bytes.len())));
    }
    p.sealed = true;
    let segment = Segment::from_parts(header, path.clone(), Arc::clone(&file), p.clone());
    let idx = index_path(dir, header.ledger_id);
    backend
        .write_atomic(&idx, &segment.sealed_index(p.last_append_ms).encode())
        .map_err(|e| LedgerError::io(format!("write {}", idx.display()), e))?;
    Ok(SegmentInfo {
        ledger_id: header.ledger_id,
        base_offset: header.base_offset,
        end_offset: p.end_offset,
        bytes: p.data_len,
        entries: p.entries,
        max_timestamp_ms: p.max_timestamp_ms,
        last_append_ms: p.last_append_ms,
        sealed: true,
    })
}

/// Creates an empty active segment `ledger_id` starting at `base_offset`
/// in closed ledger directory `dir`: the log of a partition whose segments
/// are all in the object store goes on from there.
pub fn create_active(
    dir: &Path,
    backend: &dyn Backend,
    ledger_id: u64,
    base_offset: u64,
    capacity: u64,
) -> Result<(), LedgerError> {
    backend.create_dir_all(dir).map_err(|e| LedgerError::io(format!("create {}", dir.display()), e))?;
    let now = crate::now_ms();
    let header = SegmentHeader {
        ledger_id,
        base_offset,
        created_ms: now,
        capacity: capacity.max(SEGMENT_HEADER_LEN as u64 + 1024),
    };
    Segment::create(backend, dir, header, now)?;
    Ok(())
}
