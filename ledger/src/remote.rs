//! Sealed segments that live in an object store, not on the local disk: the
//! oldest part of a tiered log. Each one is a placeholder in the ledger's
//! segment list, below the local segments, that knows its offsets, entry
//! count and timestamps (from the manifest) but no bytes. Its first read
//! fetches the object (on a blocking thread: a read that may fetch never
//! runs inside a non-blocking attempt, whose cached-only reads see nothing
//! here), checks it entry by entry, keeps it under `<ledger dir>/remote/`
//! and from then on reads it like a local file; the ledger then swaps the
//! placeholder for an ordinary segment with the full index. The cached
//! copies are dropped when the ledger closes or retention removes them.
//!
//! Why by hand: the ledger's files and its lookups (by offset, time,
//! message id) are the product's core; the fetch itself is the host's,
//! through [`RemoteSource`].

use std::{
    io,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
};

use bytes::Bytes;

use crate::{backend::Backend, backend::SegmentFile, LedgerError};

/// Where remote segments' bytes come from (the host's object store).
/// `fetch` is called on a blocking thread and may block.
pub trait RemoteSource: Send + Sync + 'static {
    /// The object of `segment`, as `ManagedLedger::sealed_segment` gave it.
    fn fetch(&self, segment: &RemoteSegment) -> Result<Bytes, LedgerError>;
}

/// A sealed segment in the object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSegment {
    /// Its ledger id.
    pub ledger_id: u64,
    /// First offset.
    pub base_offset: u64,
    /// Offset after its last message.
    pub end_offset: u64,
    /// Its header's creation time.
    pub created_ms: i64,
    /// Bytes of the object.
    pub bytes: u64,
    /// Entries in it.
    pub entries: u64,
    /// Largest message timestamp.
    pub max_timestamp_ms: i64,
    /// Where the host finds it (an object key).
    pub key: String,
}

/// The placeholder's file: fetched and stored locally at its first read.
pub(crate) struct RemoteFile {
    pub segment: RemoteSegment,
    source: Arc<dyn RemoteSource>,
    backend: Arc<dyn Backend>,
    /// `<ledger dir>/remote`.
    dir: PathBuf,
    fetched: Mutex<Option<Arc<dyn SegmentFile>>>,
}

impl RemoteFile {
    pub fn new(segment: RemoteSegment, source: Arc<dyn RemoteSource>, backend: Arc<dyn Backend>, dir: PathBuf) -> Self {
        Self { segment, source, backend, dir, fetched: Mutex::new(None) }
    }

    /// Whether the bytes are here.
    pub fn is_fetched(&self) -> bool {
        self.fetched.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    /// The local copy, fetching it first if needed (one fetch at a time).
    pub fn file(&self) -> Result<Arc<dyn SegmentFile>, LedgerError> {
        let mut fetched = self.fetched.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(file) = fetched.as_ref() {
            return Ok(Arc::clone(file));
        }
        let bytes = self.source.fetch(&self.segment)?;
        let info = crate::tier::import_segment(&self.dir, self.backend.as_ref(), &bytes)?;
        if info.ledger_id != self.segment.ledger_id
            || info.base_offset != self.segment.base_offset
            || info.end_offset != self.segment.end_offset
        {
            let _ = crate::tier::remove_segment(&self.dir, self.backend.as_ref(), info.ledger_id);
            return Err(LedgerError::Corrupt {
                ledger: self.segment.key.clone(),
                file: self.dir.clone(),
                position: 0,
                reason: format!(
                    "object {} holds segment {} offsets {}..{}, expected segment {} offsets {}..{}",
                    self.segment.key,
                    info.ledger_id,
                    info.base_offset,
                    info.end_offset,
                    self.segment.ledger_id,
                    self.segment.base_offset,
                    self.segment.end_offset
                ),
            });
        }
        let path = crate::segment::segment_path(&self.dir, self.segment.ledger_id);
        let file = self.backend.open(&path).map_err(|e| LedgerError::io(format!("open {}", path.display()), e))?;
        *fetched = Some(Arc::clone(&file));
        tracing::info!(key = %self.segment.key, ledger_id = self.segment.ledger_id, bytes = self.segment.bytes,
            "remote segment fetched");
        Ok(file)
    }

    fn io_file(&self) -> io::Result<Arc<dyn SegmentFile>> {
        self.file().map_err(|e| io::Error::other(e.to_string()))
    }
}

fn read_only() -> io::Error {
    io::Error::other("a remote segment is read-only")
}

impl SegmentFile for RemoteFile {
    fn write_at(&self, _pos: u64, _data: &[u8]) -> io::Result<()> {
        Err(read_only())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }

    fn read(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        self.io_file()?.read(pos, len)
    }

    fn read_some(&self, pos: u64, need: usize, want: usize) -> io::Result<Bytes> {
        self.io_file()?.read_some(pos, need, want)
    }

    fn read_window(&self, pos: u64, need: usize, want: usize) -> io::Result<(Bytes, bool)> {
        self.io_file()?.read_window(pos, need, want)
    }

    // Never fetches: a non-blocking attempt stops here and the read runs
    // again on a blocking thread.
    fn read_cached(&self, pos: u64, need: usize, want: usize) -> Option<(Bytes, bool)> {
        let fetched = self.fetched.lock().unwrap_or_else(PoisonError::into_inner).clone();
        fetched?.read_cached(pos, need, want)
    }

    fn capacity(&self) -> u64 {
        self.segment.bytes.div_ceil(4096).max(1) * 4096
    }

    fn zero_tail(&self, _from: u64) -> io::Result<()> {
        Err(read_only())
    }
}
