//! Opening a ledger: rebuilding its state from its files after a clean stop
//! or a crash (docs/storage.md, section 6).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use tokio::sync::watch;

use crate::{
    backend::Backend,
    cursor,
    format::{self, SealedIndex, SEGMENT_HEADER_LEN},
    now_ms,
    segment::{self, index_path, Published, Segment},
    writer::{self, Writer},
    CursorEntry, LedgerConfig, LedgerError, Shared,
};

/// Rebuilds the ledger's state from its files.
pub(crate) fn recover(
    name: String,
    dir: PathBuf,
    config: LedgerConfig,
    backend: Arc<dyn Backend>,
) -> Result<Writer, LedgerError> {
    backend.create_dir_all(&dir).map_err(|e| LedgerError::io(format!("create {}", dir.display()), e))?;
    let files = backend.list(&dir).map_err(|e| LedgerError::io(format!("list {}", dir.display()), e))?;
    let mut ids: Vec<u64> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .filter_map(|p| p.file_stem()?.to_str()?.parse().ok())
        .collect();
    ids.sort_unstable();
    let corrupt = |file: &Path, position: u64, reason: String| LedgerError::Corrupt {
        ledger: name.clone(),
        file: file.to_owned(),
        position,
        reason,
    };
    let mut segments: Vec<Arc<Segment>> = Vec::new();
    let mut expected: Option<u64> = None;
    for (i, &id) in ids.iter().enumerate() {
        let last = i + 1 == ids.len();
        let path = segment::segment_path(&dir, id);
        let (header, file) = match Segment::open_file(&name, backend.as_ref(), &path) {
            Ok(opened) => opened,
            // A crash while a segment was being created (its header not yet
            // durable): it holds nothing, so it goes.
            Err(LedgerError::Corrupt { .. }) if last && header_is_blank(backend.as_ref(), &path) => {
                tracing::warn!(ledger = %name, file = %path.display(), "removing a segment whose creation did not complete");
                backend.remove(&path).map_err(|e| LedgerError::io(format!("remove {}", path.display()), e))?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if header.ledger_id != id {
            return Err(corrupt(
                &path,
                0,
                format!("header says ledger id {} but the file name says {id}", header.ledger_id),
            ));
        }
        if let Some(end) = expected {
            if header.base_offset != end {
                return Err(corrupt(
                    &path,
                    0,
                    format!("starts at offset {} but the previous segment ends at {end}", header.base_offset),
                ));
            }
        }
        let idx_path = index_path(&dir, id);
        let index = backend
            .read_file(&idx_path)
            .ok()
            .and_then(|b| SealedIndex::decode(&b))
            .filter(|x| x.ledger_id == id && x.base_offset == header.base_offset && x.data_len <= file.capacity());
        let published = match index {
            Some(index) => {
                let segment_published = Published::from_index(index);
                let segment = Segment::from_parts(header, path.clone(), Arc::clone(&file), segment_published.clone());
                verify_tail(&name, &segment, &segment_published)?;
                segment_published
            }
            None => {
                let scan = Segment::scan(&header, file.as_ref(), config.index_interval_bytes);
                let torn = scan.garbage_at.is_some();
                if let Some((position, why)) = scan.garbage_at {
                    if !last {
                        return Err(corrupt(&path, position, format!("{why} inside a sealed segment")));
                    }
                    tracing::warn!(ledger = %name, file = %path.display(), position, reason = %why,
                        "truncating a torn tail: entries after this position were never acknowledged");
                    file.zero_tail(position).map_err(|e| LedgerError::io(format!("truncate {}", path.display()), e))?;
                }
                let mut p = scan.published;
                if last && !torn {
                    // Cut anything after the data even where the first bytes
                    // past it are zero: sectors can reach the disk out of order.
                    file.zero_tail(p.data_len)
                        .map_err(|e| LedgerError::io(format!("truncate {}", path.display()), e))?;
                }
                if !last {
                    // Sealed, but its index was lost (a crash during the roll): rewrite it.
                    p.sealed = true;
                    let segment = Segment::from_parts(header, path.clone(), Arc::clone(&file), p.clone());
                    let index = segment.sealed_index(p.last_append_ms);
                    backend
                        .write_atomic(&idx_path, &index.encode())
                        .map_err(|e| LedgerError::io(format!("write {}", idx_path.display()), e))?;
                }
                p
            }
        };
        expected = Some(published.end_offset);
        segments.push(Segment::from_parts(header, path, file, published));
    }

    let needs_new = segments.last().is_none_or(|s| s.published().sealed);
    if needs_new {
        let now = now_ms();
        let header = format::SegmentHeader {
            ledger_id: segments.last().map_or(1, |s| s.header.ledger_id + 1),
            base_offset: expected.unwrap_or(0),
            created_ms: now,
            capacity: config.segment_bytes.max(SEGMENT_HEADER_LEN as u64 + 1024),
        };
        segments.push(Segment::create(backend.as_ref(), &dir, header, now)?);
    }
    let start = segments.first().map_or(0, |s| s.header.base_offset);
    let active = segments.last().cloned().ok_or_else(|| corrupt(&dir, 0, "no segment".into()))?;
    let p = active.snapshot();
    tracing::info!(ledger = %name, segments = segments.len(), start, end = p.end_offset, "ledger opened");
    let cursors = Mutex::new(load_cursors(&name, &dir, backend.as_ref())?);
    let floor = load_start_floor(&dir, backend.as_ref()).min(p.end_offset);
    let (end, _) = watch::channel(p.end_offset);
    let segments = RwLock::new(segments);
    let shared = Arc::new(Shared {
        name,
        dir,
        config,
        backend,
        segments,
        end,
        failed: Mutex::new(None),
        queued: std::sync::atomic::AtomicUsize::new(0),
        cursors,
        cursor_io: Mutex::new(()),
        start_floor: std::sync::atomic::AtomicU64::new(floor),
        stats: crate::LedgerStats::default(),
    });
    Ok(Writer {
        shared,
        active,
        write_pos: p.data_len,
        next_offset: p.end_offset,
        next_entry_id: p.entries,
        max_ts: p.max_timestamp_ms,
        last_point_pos: p.points.last().map_or(0, |pt| pt.position),
        last_append_ms: p.last_append_ms,
        points: Vec::new(),
        mark: writer::Mark {
            write_pos: p.data_len,
            next_offset: p.end_offset,
            next_entry_id: p.entries,
            max_ts: p.max_timestamp_ms,
            last_point_pos: p.points.last().map_or(0, |pt| pt.position),
        },
    })
}

/// The file keeping the start offset set by `delete_records_before`.
pub(crate) const START_FILE: &str = "start-offset";

/// The saved start offset: 8 bytes LE and their CRC32C; 0 if absent or torn.
fn load_start_floor(dir: &Path, backend: &dyn Backend) -> u64 {
    let Ok(bytes) = backend.read_file(&dir.join(START_FILE)) else { return 0 };
    if bytes.len() != 12 {
        return 0;
    }
    let (value, crc) = bytes.split_at(8);
    let Ok(value) = <[u8; 8]>::try_from(value) else { return 0 };
    if crc32c::crc32c(&value).to_le_bytes() != crc {
        return 0;
    }
    u64::from_le_bytes(value)
}

/// Whether the segment at `path` holds nothing but a header that never
/// became durable: its header is invalid (checked by the caller) and no entry
/// follows it. A header is written once, at creation, before any entry.
fn header_is_blank(backend: &dyn Backend, path: &Path) -> bool {
    let span = SEGMENT_HEADER_LEN + format::ENTRY_HEADER_LEN;
    match backend.open(path) {
        Ok(file) => {
            file.capacity() < span as u64
                || file
                    .read(SEGMENT_HEADER_LEN as u64, format::ENTRY_HEADER_LEN)
                    .is_ok_and(|b| b.iter().all(|x| *x == 0))
        }
        Err(_) => false,
    }
}

/// Reads the saved durable cursors.
fn load_cursors(name: &str, dir: &Path, backend: &dyn Backend) -> Result<HashMap<String, CursorEntry>, LedgerError> {
    let cursor_dir = dir.join("cursors");
    let mut cursors = HashMap::new();
    let Ok(files) = backend.list(&cursor_dir) else { return Ok(cursors) };
    for path in files {
        let Some(cursor_name) = path.file_name().and_then(|f| f.to_str()).and_then(cursor::name_of) else { continue };
        let bytes = backend.read_file(&path).map_err(|e| LedgerError::io(format!("read {}", path.display()), e))?;
        let state = cursor::decode(&bytes).ok_or_else(|| LedgerError::Corrupt {
            ledger: name.to_owned(),
            file: path.clone(),
            position: 0,
            reason: "cursor file fails its checksum".into(),
        })?;
        let read_position = state.mark_delete;
        cursors.insert(cursor_name, CursorEntry { state, dirty: false, read_position });
    }
    Ok(cursors)
}

/// Checks the last entries of a sealed segment against its index: every entry
/// from the last index point must pass its CRC and end exactly at `data_len`.
fn verify_tail(name: &str, segment: &Segment, p: &Published) -> Result<(), LedgerError> {
    let Some(point) = p.points.last() else { return Ok(()) };
    let (mut next, mut entry_id) = (point.offset, point.entry_id);
    let mut entries = segment.entries_from(name, point.position, point.entry_id, p.data_len)?;
    loop {
        let position = entries.file_position();
        let Some(entry) = entries.next() else { break };
        let entry = entry?;
        if entry.meta.base_offset != next {
            return Err(LedgerError::Corrupt {
                ledger: name.to_owned(),
                file: segment.path.clone(),
                position,
                reason: "entry offsets disagree with the index".into(),
            });
        }
        next = entry.meta.next_offset();
        entry_id = entry.entry_id + 1;
    }
    let pos = entries.file_position();
    if pos != p.data_len || next != p.end_offset || entry_id != p.entries {
        return Err(LedgerError::Corrupt {
            ledger: name.to_owned(),
            file: segment.path.clone(),
            position: pos,
            reason: "the data does not end where the index says".into(),
        });
    }
    Ok(())
}
