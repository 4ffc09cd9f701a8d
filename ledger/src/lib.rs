//! The managed ledger: Polyport's storage for one topic partition.
//!
//! A ledger is a sequence of segment files (each with a ledger id), each a
//! sequence of entries. An entry is an opaque payload (one producer batch)
//! with [`EntryMeta`]: base offset, message count, format tag, timestamps and
//! a CRC32C. Offsets are dense: an entry's base offset is the previous entry's
//! base plus its count, across segment rolls and restarts. The ledger knows no
//! protocol: formats belong to whoever writes them.
//!
//! One writer task owns the tail (`writer`); readers read published data
//! without locks held across I/O, straight from a shared memory map.
//! docs/storage.md describes the byte layout and the invariants.

pub mod backend;
mod cache;
mod cursor;
mod error;
pub mod format;
mod nonblocking;
mod recovery;
mod remote;
mod segment;
mod stats;
pub mod tier;
mod writer;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, RwLock, RwLockWriteGuard, Weak},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use backend::Backend;
pub use cache::CachePool;
pub use cursor::{Ack, CursorInfo, CursorState, InitialPosition};
pub use error::LedgerError;
pub use format::EntryMeta;
use recovery::{recover, START_FILE};
pub use remote::{RemoteSegment, RemoteSource};
pub use segment::Entry;
use segment::{index_path, Published, Segment};
pub use stats::{LedgerStats, StatsSnapshot};
use tokio::sync::{mpsc, oneshot, watch};
use writer::Command;
pub use writer::{Appended, NewEntry};

/// When appends are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// fsync every append before acknowledging it (no sharing).
    Always,
    /// Group commit: appends queued together share one fsync. The writer
    /// waits up to `max_delay` for more appends unless `max_bytes` are queued.
    Group {
        /// Longest an append waits for others to share its fsync.
        max_delay: Duration,
        /// Queued bytes that trigger the write and fsync at once.
        max_bytes: u64,
    },
    /// Acknowledge once written to the OS; the OS decides when it reaches the disk.
    Os,
}

/// How a ledger stores its data.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Capacity of a new segment file; a segment rolls when the next entry does not fit.
    pub segment_bytes: u64,
    /// A segment rolls on the first append after it is this old.
    pub segment_max_age: Duration,
    /// An index point is kept every this many bytes of entries.
    pub index_interval_bytes: u64,
    /// Largest payload accepted.
    pub max_entry_bytes: u64,
    /// Durability.
    pub sync: SyncPolicy,
    /// Durable cursors are saved at most this often (and when the ledger closes).
    pub cursor_flush_interval: Duration,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 128 * 1024 * 1024,
            segment_max_age: Duration::from_secs(4 * 3600),
            index_interval_bytes: 4096,
            max_entry_bytes: 16 * 1024 * 1024,
            sync: SyncPolicy::Group { max_delay: Duration::ZERO, max_bytes: 1024 * 1024 },
            cursor_flush_interval: Duration::from_secs(1),
        }
    }
}

/// The offsets a ledger holds: `start` to `end`, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRange {
    /// First stored offset.
    pub start: u64,
    /// Offset the next message will get (the high watermark).
    pub end: u64,
}

/// Bounds of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// At most this many entries.
    pub max_entries: usize,
    /// At most this many payload bytes, except that the first entry is always
    /// returned whole, however large.
    pub max_bytes: usize,
}

/// The result of a read.
#[derive(Debug, Clone)]
pub struct ReadBatch {
    /// The entries, in offset order. The first one contains the offset asked for.
    pub entries: Vec<Entry>,
    /// The log's range when the read was served.
    pub range: LogRange,
}

/// Where a message is: Pulsar's MessageId as the ledger sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The segment.
    pub ledger_id: u64,
    /// The entry within the segment.
    pub entry_id: u64,
    /// The message within the entry.
    pub batch_index: u32,
}

/// A segment as retention and listings see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Its ledger id.
    pub ledger_id: u64,
    /// First offset.
    pub base_offset: u64,
    /// Offset after its last message.
    pub end_offset: u64,
    /// Bytes of data (headers included).
    pub bytes: u64,
    /// Entries in it.
    pub entries: u64,
    /// Largest message timestamp.
    pub max_timestamp_ms: i64,
    /// When it was last appended to.
    pub last_append_ms: i64,
    /// Whether it is sealed (every segment but the active one).
    pub sealed: bool,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// State shared by the writer and readers.
pub(crate) struct Shared {
    pub name: String,
    pub dir: PathBuf,
    pub config: LedgerConfig,
    pub backend: Arc<dyn Backend>,
    segments: RwLock<Vec<Arc<Segment>>>,
    /// The published end offset; readers wait on it.
    pub end: watch::Sender<u64>,
    failed: Mutex<Option<String>>,
    /// Commands sent to the writer and not yet taken into a batch.
    pub queued: std::sync::atomic::AtomicUsize,
    cursors: Mutex<HashMap<String, CursorEntry>>,
    /// Serialises cursor saves and deletions, which share temp file names.
    cursor_io: Mutex<()>,
    /// Offsets below this were deleted (DeleteRecords), even inside a segment.
    start_floor: std::sync::atomic::AtomicU64,
    /// Counters for stats and metrics.
    pub stats: LedgerStats,
}

struct CursorEntry {
    state: CursorState,
    /// Changed since it was last saved.
    dirty: bool,
    /// Where the next `read_cursor` starts (not saved: after a restart or a
    /// seek it is the mark-delete, so unacknowledged messages come again).
    read_position: u64,
}

impl Shared {
    fn cursors(&self) -> MutexGuard<'_, HashMap<String, CursorEntry>> {
        self.cursors.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cursor_dir(&self) -> PathBuf {
        self.dir.join("cursors")
    }

    /// Saves every dirty durable cursor (no lock held while writing).
    fn flush_cursors(&self) -> Result<(), LedgerError> {
        let _io = self.cursor_io.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let dirty: Vec<(String, CursorState)> = self
            .cursors()
            .iter_mut()
            .filter(|(_, c)| c.dirty && c.state.durable)
            .map(|(name, c)| {
                c.dirty = false;
                (name.clone(), c.state.clone())
            })
            .collect();
        if dirty.is_empty() {
            return Ok(());
        }
        let dir = self.cursor_dir();
        self.backend.create_dir_all(&dir).map_err(|e| LedgerError::io(format!("create {}", dir.display()), e))?;
        let mut first_error = None;
        for (name, state) in dirty {
            let path = dir.join(cursor::file_name(&name));
            if let Err(e) = self.backend.write_atomic(&path, &cursor::encode(&state)) {
                // Try again at the next flush; go on with the others.
                if let Some(c) = self.cursors().get_mut(&name) {
                    c.dirty = true;
                }
                first_error.get_or_insert(LedgerError::io(format!("save cursor {}", path.display()), e));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    pub fn segments_mut(&self) -> RwLockWriteGuard<'_, Vec<Arc<Segment>>> {
        self.segments.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn segments_from(&self, offset: u64) -> Vec<Arc<Segment>> {
        let segments = self.segments.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let i = segments.partition_point(|s| s.header.base_offset <= offset).saturating_sub(1);
        segments[i..].to_vec()
    }

    /// First offset of the oldest segment, without copying the list (every read asks).
    fn first_offset(&self) -> u64 {
        let segments = self.segments.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        segments.first().map_or(0, |s| s.header.base_offset)
    }

    fn all_segments(&self) -> Vec<Arc<Segment>> {
        self.segments.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Where fetched remote segments are kept.
    pub fn remote_dir(&self) -> PathBuf {
        self.dir.join("remote")
    }

    /// Replaces each placeholder whose bytes were fetched by an ordinary
    /// segment with its full index (reads then seek by it rather than scan
    /// from the segment's start). Reads the index files: blocking threads.
    fn promote_fetched(&self) {
        let fetched: Vec<Arc<Segment>> = self
            .segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|s| s.is_fetched_placeholder())
            .cloned()
            .collect();
        for placeholder in fetched {
            let Some(file) = placeholder.remote.as_ref().and_then(|r| r.file().ok()) else { continue };
            let id = placeholder.header.ledger_id;
            let idx = index_path(&self.remote_dir(), id);
            let Some(index) = self.backend.read_file(&idx).ok().and_then(|b| format::SealedIndex::decode(&b)) else {
                continue;
            };
            let published = Published::from_index(index);
            let segment = Segment::from_parts(placeholder.header, placeholder.path.clone(), file, published);
            let mut segments = self.segments_mut();
            if let Some(slot) = segments.iter_mut().find(|s| Arc::ptr_eq(s, &placeholder)) {
                *slot = segment;
            }
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn fail(&self, reason: String) {
        tracing::error!(ledger = %self.name, "{reason}; the ledger refuses further writes");
        *self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
    }
}

/// A topic partition's managed ledger. Cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct ManagedLedger {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Command>,
}

impl std::fmt::Debug for ManagedLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedLedger").field("name", &self.shared.name).field("range", &self.range()).finish()
    }
}

impl ManagedLedger {
    /// Opens (creating if needed) the ledger stored in `dir`, recovering it
    /// from a crash: a torn tail is cut off at the last entry whose CRC holds;
    /// damage anywhere else is an error naming the file and position.
    pub async fn open(
        name: impl Into<String>,
        dir: impl Into<PathBuf>,
        mut config: LedgerConfig,
        backend: Arc<dyn Backend>,
    ) -> Result<Self, LedgerError> {
        let (name, dir) = (name.into(), dir.into());
        // The entry header stores the payload length in 32 bits.
        config.max_entry_bytes = config.max_entry_bytes.min(u64::from(u32::MAX) - format::ENTRY_HEADER_LEN as u64);
        let writer = tokio::task::spawn_blocking(move || recover(name, dir, config, backend))
            .await
            .map_err(|e| LedgerError::io("ledger recovery task", std::io::Error::other(e.to_string())))??;
        let shared = Arc::clone(&writer.shared);
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(writer.run(rx));
        tokio::spawn(flush_cursors_periodically(Arc::downgrade(&shared)));
        Ok(Self { shared, tx })
    }

    /// The ledger's name (the topic partition).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Appends entries; completes once they are durable under the sync policy.
    pub async fn append(&self, entries: Vec<NewEntry>) -> Result<Vec<Appended>, LedgerError> {
        self.append_with(entries, true).await
    }

    /// Appends entries; with `durable` false the answer comes once they are
    /// written to the OS, before the policy's fsync (Kafka's acks=1).
    pub async fn append_with(&self, entries: Vec<NewEntry>, durable: bool) -> Result<Vec<Appended>, LedgerError> {
        let entries = entries.into_iter().map(|e| {
            let crc = crc32c::crc32c(&e.payload);
            (e, crc)
        });
        self.append_checked(entries.collect(), durable).await
    }

    /// [`append_with`](Self::append_with) for entries whose payload CRC-32C
    /// the caller already has; it is stored as given (the caller answers
    /// for it: a wrong one makes the entry fail its check once it is read from
    /// the disk; reads from the tail cache do not compute it again).
    pub async fn append_checked(
        &self,
        entries: Vec<(NewEntry, u32)>,
        durable: bool,
    ) -> Result<Vec<Appended>, LedgerError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let (messages, bytes) =
            entries.iter().fold((0u64, 0u64), |(m, b), (e, _)| (m + u64::from(e.count), b + e.payload.len() as u64));
        let count = entries.len() as u64;
        let (reply, rx) = oneshot::channel();
        self.send(Command::Append { entries, durable, reply }).await?;
        let appended = rx.await.map_err(|_| self.stopped())??;
        self.shared.stats.appended(count, messages, bytes);
        Ok(appended)
    }

    /// The ledger's counters (appends, deliveries, producers, consumers).
    pub fn stats(&self) -> &LedgerStats {
        &self.shared.stats
    }

    async fn send(&self, cmd: Command) -> Result<(), LedgerError> {
        /// Takes the command back off the count unless it was sent (the
        /// writer counts it down then): a failed send, or a caller that gave
        /// up while waiting for room, must not leave it counted.
        struct Unsent<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Unsent<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            }
        }
        self.shared.queued.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let unsent = Unsent(&self.shared.queued);
        self.tx.send(cmd).await.map_err(|_| LedgerError::Closed(self.shared.name.clone()))?;
        std::mem::forget(unsent);
        Ok(())
    }

    /// Why a command went unanswered: the writer stopped on a failure
    /// (its reason; a panic drops the replies of the batch it was writing
    /// just before it records why, so those callers may see `Closed`), or
    /// the ledger was closed.
    fn stopped(&self) -> LedgerError {
        match self.shared.failure() {
            Some(reason) => LedgerError::Failed { ledger: self.shared.name.clone(), reason },
            None => LedgerError::Closed(self.shared.name.clone()),
        }
    }

    /// Seals the active segment and starts a new one.
    pub async fn roll(&self) -> Result<(), LedgerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Roll { reply }).await?;
        rx.await.map_err(|_| self.stopped())?
    }

    /// Syncs, saves cursors and stops the writer; later appends fail with
    /// [`LedgerError::Closed`] (or [`LedgerError::Failed`], once the ledger has failed).
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.send(Command::Close { reply }).await.is_ok() {
            let _ = rx.await;
        }
        if let Err(e) = self.save_cursors().await {
            tracing::warn!(ledger = %self.shared.name, error = %e, "cursors not saved at close");
        }
    }

    /// Saves every durable cursor changed since the last save.
    pub async fn save_cursors(&self) -> Result<(), LedgerError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || shared.flush_cursors())
            .await
            .map_err(|e| LedgerError::io("cursor flush task", std::io::Error::other(e.to_string())))?
    }

    /// Opens cursor `name`, creating it at `initial` if it does not exist. A
    /// durable cursor is saved at once when created.
    pub async fn open_cursor(
        &self,
        name: &str,
        durable: bool,
        initial: InitialPosition,
    ) -> Result<CursorInfo, LedgerError> {
        let created = {
            let mut cursors = self.shared.cursors();
            if cursors.contains_key(name) {
                false
            } else {
                let range = self.range();
                let at = match initial {
                    InitialPosition::Earliest => range.start,
                    InitialPosition::Latest => range.end,
                    InitialPosition::Offset(o) => o.clamp(range.start, range.end),
                };
                cursors.insert(
                    name.to_owned(),
                    CursorEntry { state: CursorState::at(at, durable), dirty: true, read_position: at },
                );
                true
            }
        };
        if created && durable {
            self.save_cursors().await?;
        }
        self.cursor(name).ok_or_else(|| LedgerError::Closed(self.shared.name.clone()))
    }

    fn no_cursor(&self, name: &str) -> LedgerError {
        LedgerError::NoSuchCursor { ledger: self.shared.name.clone(), cursor: name.to_owned() }
    }

    /// Acknowledges on cursor `name`; saved with the next flush.
    pub fn acknowledge(&self, name: &str, ack: &Ack) -> Result<CursorInfo, LedgerError> {
        let end = self.range().end;
        {
            let mut cursors = self.shared.cursors();
            let cursor = cursors.get_mut(name).ok_or_else(|| self.no_cursor(name))?;
            if cursor.state.apply(ack, end) {
                cursor.dirty = true;
            }
        }
        self.cursor(name).ok_or_else(|| self.no_cursor(name))
    }

    /// Moves cursor `name` to `offset` (clamped to the stored range).
    pub fn seek_cursor(&self, name: &str, offset: u64) -> Result<CursorInfo, LedgerError> {
        let range = self.range();
        {
            let mut cursors = self.shared.cursors();
            let cursor = cursors.get_mut(name).ok_or_else(|| self.no_cursor(name))?;
            cursor.state.seek(offset.clamp(range.start, range.end));
            cursor.read_position = cursor.state.mark_delete;
            cursor.dirty = true;
        }
        self.cursor(name).ok_or_else(|| self.no_cursor(name))
    }

    /// Reads from cursor `name`'s read position — where its previous read
    /// ended; the mark-delete after a restart, a seek, or with `rewind`
    /// (redelivery) — and moves the read position past what it returns.
    /// Waits up to `wait` at the end of the log, like [`ManagedLedger::read`].
    pub async fn read_cursor(
        &self,
        name: &str,
        limits: ReadLimits,
        wait: Option<Duration>,
        rewind: bool,
    ) -> Result<ReadBatch, LedgerError> {
        let start = self.range().start;
        let position = {
            let mut cursors = self.shared.cursors();
            let cursor = cursors.get_mut(name).ok_or_else(|| self.no_cursor(name))?;
            if rewind {
                cursor.read_position = cursor.state.mark_delete;
            }
            cursor.read_position.max(start)
        };
        let batch = self.read(position, limits, wait).await?;
        if let Some(last) = batch.entries.last() {
            if let Some(cursor) = self.shared.cursors().get_mut(name) {
                cursor.read_position = cursor.read_position.max(last.meta.next_offset());
            }
        }
        Ok(batch)
    }

    /// Deletes cursor `name` and its saved file.
    pub async fn delete_cursor(&self, name: &str) -> Result<(), LedgerError> {
        let removed = self.shared.cursors().remove(name).ok_or_else(|| self.no_cursor(name))?;
        self.shared.stats.clear_cursor_owner(name);
        if removed.state.durable {
            let path = self.shared.cursor_dir().join(cursor::file_name(name));
            let shared = Arc::clone(&self.shared);
            tokio::task::spawn_blocking(move || {
                let removed = {
                    let _io = shared.cursor_io.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    shared.backend.remove(&path)
                };
                match removed {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(LedgerError::io(format!("delete {}", path.display()), e))
                    }
                    _ => Ok(()),
                }
            })
            .await
            .map_err(|e| LedgerError::io("cursor delete task", std::io::Error::other(e.to_string())))??;
        }
        Ok(())
    }

    /// Cursor `name` with its backlog.
    pub fn cursor(&self, name: &str) -> Option<CursorInfo> {
        let state = self.shared.cursors().get(name).map(|c| c.state.clone())?;
        Some(self.describe(name, &state))
    }

    /// Every cursor with its backlog, sorted by name.
    pub fn cursors(&self) -> Vec<CursorInfo> {
        let states: Vec<(String, CursorState)> =
            self.shared.cursors().iter().map(|(n, c)| (n.clone(), c.state.clone())).collect();
        let mut out: Vec<CursorInfo> = states.iter().map(|(n, s)| self.describe(n, s)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Every cursor's state, without the backlog [`cursors`](Self::cursors)
    /// computes (which may read the disk): memory only.
    pub fn cursor_states(&self) -> Vec<(String, CursorState)> {
        self.shared.cursors().iter().map(|(n, c)| (n.clone(), c.state.clone())).collect()
    }

    /// The lowest mark-delete of the durable cursors: data below it is consumed by all of them.
    pub fn slowest_durable_cursor(&self) -> Option<u64> {
        self.shared.cursors().values().filter(|c| c.state.durable).map(|c| c.state.mark_delete).min()
    }

    fn describe(&self, name: &str, state: &CursorState) -> CursorInfo {
        let range = self.range();
        let from = state.mark_delete.clamp(range.start, range.end);
        CursorInfo {
            name: name.to_owned(),
            durable: state.durable,
            mark_delete: state.mark_delete,
            acked_ranges: state.acked.iter().map(|(s, e)| (*s, *e)).collect(),
            backlog_entries: self.entries_from(from),
            backlog_messages: (range.end - from).saturating_sub(state.acked_above()),
        }
    }

    /// Entries from the one holding `offset` to the end.
    fn entries_from(&self, offset: u64) -> u64 {
        let end = self.range().end;
        if offset >= end {
            return 0;
        }
        let segments = self.shared.segments_from(offset);
        // A backlog count never fetches a remote segment (it runs on the
        // caller's task): one not here counts whole.
        let remote = segments.first().is_some_and(|s| s.is_unfetched_placeholder());
        let first = if remote { 0 } else { self.position(offset).map_or(0, |p| p.entry_id) };
        let mut total = 0;
        for (i, segment) in segments.iter().enumerate() {
            let entries = segment.published().entries;
            total += if i == 0 { entries.saturating_sub(first) } else { entries };
        }
        total
    }

    /// The stored range.
    pub fn range(&self) -> LogRange {
        let first = self.shared.first_offset();
        let end = *self.shared.end.borrow();
        let floor = self.shared.start_floor.load(std::sync::atomic::Ordering::Acquire);
        LogRange { start: first.max(floor.min(end)), end }
    }

    /// Deletes every message below `offset` (Kafka's DeleteRecords): the
    /// start of the log moves there at once, durably; whole segments below it
    /// are removed. Returns the new range.
    pub async fn delete_records_before(&self, offset: u64) -> Result<LogRange, LedgerError> {
        let range = self.range();
        if offset > range.end {
            return Err(LedgerError::OffsetOutOfRange {
                ledger: self.shared.name.clone(),
                offset,
                start: range.start,
                end: range.end,
            });
        }
        if offset > range.start {
            let shared = Arc::clone(&self.shared);
            tokio::task::spawn_blocking(move || {
                let path = shared.dir.join(START_FILE);
                let mut bytes = offset.to_le_bytes().to_vec();
                bytes.extend_from_slice(&crc32c::crc32c(&offset.to_le_bytes()).to_le_bytes());
                shared
                    .backend
                    .write_atomic(&path, &bytes)
                    .map_err(|e| LedgerError::io(format!("write {}", path.display()), e))?;
                shared.start_floor.fetch_max(offset, std::sync::atomic::Ordering::AcqRel);
                Ok::<(), LedgerError>(())
            })
            .await
            .map_err(|e| LedgerError::io("delete records task", std::io::Error::other(e.to_string())))??;
            self.delete_segments_before(offset)?;
        }
        Ok(self.range())
    }

    /// Waits up to `wait` for the end of the log to pass `offset` (a
    /// long poll's wait, without reading); answers the range then.
    pub async fn wait_past(&self, offset: u64, wait: Duration) -> LogRange {
        let mut rx = self.shared.end.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|end| *end > offset)).await;
        self.range()
    }

    /// Whether the ledger was closed (its topic deleted or the broker
    /// stopping): its appends fail from then on.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Entries from the one containing `offset`, within `limits`. At the end
    /// of the log, waits up to `wait` for new entries (long poll).
    pub async fn read(
        &self,
        offset: u64,
        limits: ReadLimits,
        wait: Option<Duration>,
    ) -> Result<ReadBatch, LedgerError> {
        let range = self.range();
        self.check_range(offset, range)?;
        if offset == range.end {
            if let Some(wait) = wait {
                let mut rx = self.shared.end.subscribe();
                let _ = tokio::time::timeout(wait, rx.wait_for(|end| *end > offset)).await;
            }
        }
        self.nonblocking(move |ledger| ledger.read_now(offset, limits)).await
    }

    /// Runs `f`, which may read the disk (the synchronous lookups:
    /// [`read_now`](Self::read_now), [`position`](Self::position),
    /// [`offset_of`](Self::offset_of), [`find_by_time`](Self::find_by_time)),
    /// without blocking the runtime: first here, from memory only (the tail
    /// cache: consumers keeping up, acknowledgements of what was just sent);
    /// if that would have read the disk, its result is dropped and `f` runs
    /// again on a blocking thread (`nonblocking.rs`).
    pub async fn nonblocking<T, F>(&self, f: F) -> Result<T, LedgerError>
    where
        F: Fn(&ManagedLedger) -> Result<T, LedgerError> + Send + 'static,
        T: Send + 'static,
    {
        if let Some(done) = nonblocking::attempt(|| f(self)) {
            return done;
        }
        let ledger = self.clone();
        tokio::task::spawn_blocking(move || f(&ledger))
            .await
            .map_err(|e| LedgerError::io("blocking read", std::io::Error::other(e.to_string())))?
    }

    fn check_range(&self, offset: u64, range: LogRange) -> Result<(), LedgerError> {
        if offset < range.start || offset > range.end {
            return Err(LedgerError::OffsetOutOfRange {
                ledger: self.shared.name.clone(),
                offset,
                start: range.start,
                end: range.end,
            });
        }
        Ok(())
    }

    /// Reads what is published now, without waiting. It may read the disk:
    /// from async code, call it through [`nonblocking`](Self::nonblocking).
    pub fn read_now(&self, offset: u64, limits: ReadLimits) -> Result<ReadBatch, LedgerError> {
        let range = self.range();
        self.check_range(offset, range)?;
        let segments = self.shared.segments_from(offset);
        let remote = segments.first().is_some_and(|s| s.remote.is_some());
        let batch = self.read_segments(offset, limits, range, segments);
        if remote && !nonblocking::active() {
            self.shared.promote_fetched();
        }
        batch
    }

    fn read_segments(
        &self,
        offset: u64,
        limits: ReadLimits,
        range: LogRange,
        segments: Vec<Arc<Segment>>,
    ) -> Result<ReadBatch, LedgerError> {
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        'segments: for segment in segments {
            let (start, data_len) = {
                let p = segment.published();
                let start = if offset >= segment.header.base_offset {
                    Segment::point_for_offset(&p.points, offset)
                } else {
                    p.points.first().copied()
                };
                (start, p.data_len)
            };
            let Some(point) = start else { continue };
            for entry in segment.entries_from(&self.shared.name, point.position, point.entry_id, data_len)? {
                let entry = entry?;
                if entry.meta.next_offset() <= offset {
                    continue;
                }
                if !entries.is_empty() && bytes + entry.payload.len() > limits.max_bytes {
                    break 'segments;
                }
                bytes += entry.payload.len();
                entries.push(entry);
                if entries.len() >= limits.max_entries || bytes >= limits.max_bytes {
                    break 'segments;
                }
            }
        }
        Ok(ReadBatch { entries, range })
    }

    /// The first entry holding a message with timestamp at least `timestamp_ms`
    /// (by the entries' max timestamps), or `None` if there is none yet.
    pub fn find_by_time(&self, timestamp_ms: i64) -> Result<Option<Entry>, LedgerError> {
        let found = self.find_by_time_in(timestamp_ms);
        if !nonblocking::active() {
            self.shared.promote_fetched();
        }
        found
    }

    fn find_by_time_in(&self, timestamp_ms: i64) -> Result<Option<Entry>, LedgerError> {
        for segment in self.shared.all_segments() {
            let (start, data_len, max) = {
                let p = segment.published();
                (Segment::point_for_time(&p.points, timestamp_ms), p.data_len, p.max_timestamp_ms)
            };
            if max < timestamp_ms {
                continue;
            }
            let Some(point) = start else { continue };
            for entry in segment.entries_from(&self.shared.name, point.position, point.entry_id, data_len)? {
                let entry = entry?;
                if entry.meta.max_timestamp_ms >= timestamp_ms {
                    return Ok(Some(entry));
                }
            }
        }
        Ok(None)
    }

    /// Where the message at `offset` is stored.
    pub fn position(&self, offset: u64) -> Result<Position, LedgerError> {
        let range = self.range();
        if offset >= range.end {
            return Err(LedgerError::OffsetOutOfRange {
                ledger: self.shared.name.clone(),
                offset,
                start: range.start,
                end: range.end,
            });
        }
        let batch = self.read_now(offset, ReadLimits { max_entries: 1, max_bytes: 0 })?;
        let entry = batch.entries.first().ok_or_else(|| LedgerError::OffsetOutOfRange {
            ledger: self.shared.name.clone(),
            offset,
            start: range.start,
            end: range.end,
        })?;
        Ok(Position {
            ledger_id: entry.ledger_id,
            entry_id: entry.entry_id,
            batch_index: (offset - entry.meta.base_offset) as u32,
        })
    }

    /// The offset of the message at `position`.
    pub fn offset_of(&self, position: Position) -> Result<u64, LedgerError> {
        let found = self.offset_of_in(position);
        if !nonblocking::active() {
            self.shared.promote_fetched();
        }
        found
    }

    fn offset_of_in(&self, position: Position) -> Result<u64, LedgerError> {
        let no_entry = || LedgerError::NoSuchEntry {
            ledger: self.shared.name.clone(),
            ledger_id: position.ledger_id,
            entry_id: position.entry_id,
        };
        let segment = self
            .shared
            .all_segments()
            .into_iter()
            .find(|s| s.header.ledger_id == position.ledger_id)
            .ok_or_else(no_entry)?;
        let (start, data_len, entries) = {
            let p = segment.published();
            (Segment::point_for_entry(&p.points, position.entry_id), p.data_len, p.entries)
        };
        if position.entry_id >= entries {
            return Err(no_entry());
        }
        let point = start.ok_or_else(no_entry)?;
        for entry in segment.entries_from(&self.shared.name, point.position, point.entry_id, data_len)? {
            let entry = entry?;
            if entry.entry_id == position.entry_id {
                if position.batch_index >= entry.meta.count {
                    return Err(no_entry());
                }
                return Ok(entry.meta.base_offset + u64::from(position.batch_index));
            }
        }
        Err(no_entry())
    }

    /// Every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.shared
            .all_segments()
            .iter()
            .map(|s| {
                let p = s.published();
                SegmentInfo {
                    ledger_id: s.header.ledger_id,
                    base_offset: s.header.base_offset,
                    end_offset: p.end_offset,
                    bytes: p.data_len,
                    entries: p.entries,
                    max_timestamp_ms: p.max_timestamp_ms,
                    last_append_ms: p.last_append_ms,
                    sealed: p.sealed,
                }
            })
            .collect()
    }

    /// Deletes the oldest sealed segments that end at or before `offset`;
    /// never the active one. Returns how many were deleted.
    pub fn delete_segments_before(&self, offset: u64) -> Result<usize, LedgerError> {
        let doomed: Vec<Arc<Segment>> = {
            let mut segments = self.shared.segments_mut();
            let keep_from = segments
                .iter()
                .position(|s| {
                    let p = s.published();
                    !p.sealed || p.end_offset > offset
                })
                .unwrap_or(segments.len().saturating_sub(1));
            segments.drain(..keep_from).collect()
        };
        for segment in &doomed {
            let id = segment.header.ledger_id;
            match self.shared.backend.remove(&segment.path) {
                // A remote segment never fetched has no local file.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && segment.remote.is_some() => {}
                Err(e) => return Err(LedgerError::io(format!("delete {}", segment.path.display()), e)),
                Ok(()) => {}
            }
            let _ = self.shared.backend.remove(&segment.path.with_extension("idx"));
            tracing::info!(ledger = %self.shared.name, ledger_id = id, "segment deleted by retention");
        }
        Ok(doomed.len())
    }

    /// Puts `remote`, the tiered segments older than the local ones, below
    /// them as placeholders read from `source` on demand: the ones that
    /// continue down from the first local segment, offset for offset and
    /// id for id. Clears copies fetched by an earlier run. Returns how many
    /// were attached. Touches the disk: call it from a blocking thread.
    pub fn attach_remote(&self, mut remote: Vec<RemoteSegment>, source: Arc<dyn RemoteSource>) -> usize {
        let dir = self.shared.remote_dir();
        let _ = self.shared.backend.remove_dir_all(&dir);
        remote.sort_by_key(|s| s.base_offset);
        let mut segments = self.shared.segments_mut();
        let (mut next_offset, mut next_id) =
            segments.first().map_or((u64::MAX, u64::MAX), |s| (s.header.base_offset, s.header.ledger_id));
        let mut chain = Vec::new();
        for s in remote.into_iter().rev() {
            if s.end_offset != next_offset || s.ledger_id >= next_id {
                break;
            }
            (next_offset, next_id) = (s.base_offset, s.ledger_id);
            let file = remote::RemoteFile::new(s, Arc::clone(&source), Arc::clone(&self.shared.backend), dir.clone());
            chain.push(Segment::placeholder(Arc::new(file), &dir));
        }
        chain.reverse();
        let attached = chain.len();
        segments.splice(0..0, chain);
        attached
    }

    /// Replaces local sealed segment `remote.ledger_id`, tiered as
    /// `remote`, by a placeholder reading it from `source`, and deletes the
    /// local copy (Pulsar's offload deletion lag). Never the active segment.
    /// Returns whether it did. Touches the disk: a blocking thread.
    pub fn evict_to_remote(&self, remote: RemoteSegment, source: Arc<dyn RemoteSource>) -> Result<bool, LedgerError> {
        let dir = self.shared.remote_dir();
        let old = {
            let mut segments = self.shared.segments_mut();
            let last = segments.len().saturating_sub(1);
            let Some(i) = segments.iter().position(|s| s.header.ledger_id == remote.ledger_id) else {
                return Ok(false);
            };
            let fits = {
                let s = &segments[i];
                let p = s.published();
                i < last
                    && p.sealed
                    && s.remote.is_none()
                    && p.end_offset == remote.end_offset
                    && s.header.base_offset == remote.base_offset
            };
            if !fits {
                return Ok(false);
            }
            let file = remote::RemoteFile::new(remote, source, Arc::clone(&self.shared.backend), dir.clone());
            std::mem::replace(&mut segments[i], Segment::placeholder(Arc::new(file), &dir))
        };
        // Readers holding the old segment keep its mapping until they drop it.
        self.shared
            .backend
            .remove(&old.path)
            .map_err(|e| LedgerError::io(format!("delete {}", old.path.display()), e))?;
        let _ = self.shared.backend.remove(&old.path.with_extension("idx"));
        Ok(true)
    }

    /// The ledger ids of the segments that are here (not only in the object store).
    pub fn local_ids(&self) -> std::collections::HashSet<u64> {
        let segments = self.shared.segments.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        segments.iter().filter(|s| s.remote.is_none()).map(|s| s.header.ledger_id).collect()
    }
}

/// Saves dirty cursors every `cursor_flush_interval` until the ledger is dropped.
async fn flush_cursors_periodically(shared: Weak<Shared>) {
    let Some(interval) = shared.upgrade().map(|s| s.config.cursor_flush_interval) else { return };
    loop {
        tokio::time::sleep(interval).await;
        let Some(shared) = shared.upgrade() else { return };
        let result = tokio::task::spawn_blocking(move || {
            let r = shared.flush_cursors();
            (r, shared.name.clone())
        })
        .await;
        if let Ok((Err(e), name)) = result {
            tracing::warn!(ledger = %name, error = %e, "saving cursors failed; will retry");
        }
    }
}
