//! The single owner of a ledger's tail. Appends reach it through a channel;
//! it batches them, writes them with one system call per batch, syncs them
//! according to the policy, publishes them to readers, and answers.
//!
//! The batch work (CRC, copy, write, fsync, roll) is synchronous and runs on a
//! blocking thread with the writer moved into it, so no lock is held across
//! I/O and the runtime's workers never wait on the disk.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::{
    format::{
        encode_entry_header_with_crc, EntryMeta, IndexPoint, SegmentHeader, ENTRY_HEADER_LEN, SEGMENT_HEADER_LEN,
    },
    now_ms,
    segment::{index_path, Segment},
    LedgerError, Shared, SyncPolicy,
};

/// An entry to append: an opaque payload and what the ledger must know of it.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The payload, stored as given.
    pub payload: Bytes,
    /// Number of messages in it (at least 1): the offsets it takes.
    pub count: u32,
    /// Format tag of the writer (opaque to the ledger).
    pub format: u16,
    /// Writer flags (opaque to the ledger).
    pub flags: u16,
    /// Largest message timestamp in it, Unix ms (-1 if unknown: publish time is used).
    pub max_timestamp_ms: i64,
}

/// Where an appended entry was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of its first message.
    pub base_offset: u64,
    /// Its segment.
    pub ledger_id: u64,
    /// Its id within the segment.
    pub entry_id: u64,
    /// The publish time the ledger gave it.
    pub publish_time_ms: i64,
}

pub(crate) type Reply = oneshot::Sender<Result<Vec<Appended>, LedgerError>>;

pub(crate) enum Command {
    /// Entries with the CRC32C of each payload, computed by the caller so the
    /// single writer does not read every payload byte.
    Append {
        entries: Vec<(NewEntry, u32)>,
        durable: bool,
        reply: Reply,
    },
    Roll {
        reply: oneshot::Sender<Result<(), LedgerError>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// The tail state, owned by the writer.
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub active: Arc<Segment>,
    /// Everything before this position is written.
    pub write_pos: u64,
    pub next_offset: u64,
    pub next_entry_id: u64,
    pub max_ts: i64,
    pub last_point_pos: u64,
    /// Publish time of the last entry staged, Unix ms.
    pub last_append_ms: i64,
    /// Index points staged but not yet written.
    pub points: Vec<IndexPoint>,
    /// The state after the last successful write, restored if a write fails.
    pub mark: Mark,
}

/// What the writer had written when a write last succeeded.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mark {
    pub write_pos: u64,
    pub next_offset: u64,
    pub next_entry_id: u64,
    pub max_ts: i64,
    pub last_point_pos: u64,
}

/// Appends staged in the active segment but not yet written: their
/// encoded headers and their payloads (shared, not copied), from `start`.
/// Staged bytes that are written at once, without waiting for the end of
/// the batch: at most this plus one entry per write.
const WRITE_BYTES: u64 = 4 << 20;

struct Staged {
    /// `ENTRY_HEADER_LEN` bytes per entry.
    headers: Vec<u8>,
    payloads: Vec<Bytes>,
    /// Bytes staged, headers and payloads.
    len: u64,
    start: u64,
}

impl Staged {
    fn at(start: u64) -> Self {
        Self { headers: Vec::new(), payloads: Vec::new(), len: 0, start }
    }

    fn end(&self) -> u64 {
        self.start + self.len
    }

    fn clear(&mut self) {
        self.headers.clear();
        self.payloads.clear();
        self.len = 0;
    }
}

/// Appends answered once their data is durable (or, for `Os`, visible).
type Waiting = Vec<(Reply, Vec<Appended>)>;

/// Written data for the syncer: fsync it (unless `Os`), publish it, answer.
pub(crate) struct SyncJob {
    segment: Arc<Segment>,
    state: Published,
    replies: Waiting,
    sync: bool,
    done: Option<oneshot::Sender<()>>,
}

/// The part of a segment's published state a job advances.
#[derive(Clone, Copy)]
struct Published {
    data_len: u64,
    end_offset: u64,
    entries: u64,
    max_ts: i64,
    last_append_ms: i64,
}

impl Writer {
    fn ledger(&self) -> &str {
        &self.shared.name
    }

    fn state(&self) -> Published {
        Published {
            data_len: self.write_pos,
            end_offset: self.next_offset,
            entries: self.next_entry_id,
            max_ts: self.max_ts,
            last_append_ms: self.last_append_ms,
        }
    }

    /// The task: receive, batch, hand the batch to a blocking thread, give
    /// what it wrote to the syncer, repeat. Writing the next batch overlaps
    /// the fsync of the previous one.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let (sync_tx, sync_rx) = mpsc::unbounded_channel();
        let syncer = tokio::spawn(sync_loop(Arc::clone(&self.shared), sync_rx));
        let mut closing = None;
        while closing.is_none() {
            let Some(first) = rx.recv().await else { break };
            let mut batch = vec![first];
            match self.shared.config.sync {
                // One fsync per append: no batching.
                SyncPolicy::Always => {}
                SyncPolicy::Group { max_delay, max_bytes } => {
                    let deadline = Instant::now() + max_delay;
                    let mut bytes = batch_bytes(&batch);
                    loop {
                        while let Ok(cmd) = rx.try_recv() {
                            bytes += batch_bytes(std::slice::from_ref(&cmd));
                            batch.push(cmd);
                        }
                        if bytes >= max_bytes
                            || max_delay.is_zero()
                            || batch.iter().any(|c| !matches!(c, Command::Append { .. }))
                        {
                            break;
                        }
                        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                            Ok(Some(cmd)) => {
                                bytes += batch_bytes(std::slice::from_ref(&cmd));
                                batch.push(cmd);
                            }
                            _ => break,
                        }
                    }
                }
                SyncPolicy::Os => {
                    while let Ok(cmd) = rx.try_recv() {
                        batch.push(cmd);
                    }
                }
            }
            self.shared.queued.fetch_sub(batch.len(), std::sync::atomic::Ordering::AcqRel);
            let shared = Arc::clone(&self.shared);
            let moved = tokio::task::spawn_blocking(move || {
                let (closing, job) = self.apply(batch);
                (self, closing, job)
            })
            .await;
            match moved {
                Ok((writer, close, job)) => {
                    self = writer;
                    closing = close;
                    if let Some(job) = job {
                        let _ = sync_tx.send(job);
                    }
                    if self.shared.config.sync == SyncPolicy::Always {
                        // One fsync per append: wait for it before taking the next.
                        self.drain_syncer(&sync_tx, false).await;
                    }
                }
                // The blocking task panicked (a bug): what it wrote is
                // unknown, so the ledger takes no more writes, as after a
                // failed fsync, and says why to every later caller.
                // A cancelled one: the runtime is shutting down.
                Err(e) if e.is_cancelled() => return,
                Err(e) => {
                    let what = panic_message(e);
                    shared.fail(format!("the ledger's writer panicked: {what}"));
                    // The syncer finishes the jobs it has (their appends are
                    // answered) before a close is.
                    drop(sync_tx);
                    refuse_all(&shared, rx, syncer).await;
                    return;
                }
            }
        }
        // Closing: everything written becomes durable, whatever the policy.
        self.drain_syncer(&sync_tx, self.shared.failure().is_none()).await;
        if let Some(reply) = closing {
            let _ = reply.send(());
        }
    }

    /// Waits until the syncer has handled every job sent so far (and, with
    /// `sync`, fsynced the active segment once more).
    async fn drain_syncer(&self, sync_tx: &mpsc::UnboundedSender<SyncJob>, sync: bool) {
        let (done, wait) = oneshot::channel();
        let job = SyncJob {
            segment: Arc::clone(&self.active),
            state: self.state(),
            replies: Vec::new(),
            sync,
            done: Some(done),
        };
        if sync_tx.send(job).is_ok() {
            let _ = wait.await;
        }
    }

    /// Processes a batch. Returns the close reply if the batch closes the
    /// ledger, and the job that makes the batch's writes durable.
    fn apply(&mut self, batch: Vec<Command>) -> (Option<oneshot::Sender<()>>, Option<SyncJob>) {
        let staged = &mut Staged::at(self.write_pos);
        let mut pending: Waiting = Vec::new();
        let mut written: Waiting = Vec::new();
        let mut close = None;
        let policy = self.shared.config.sync;
        for cmd in batch {
            let failed =
                self.shared.failure().map(|reason| LedgerError::Failed { ledger: self.ledger().to_owned(), reason });
            match cmd {
                Command::Append { reply, .. } if failed.is_some() => {
                    let _ = reply.send(Err(failed.unwrap_or(LedgerError::Closed(String::new()))));
                }
                Command::Append { entries, durable, reply } => {
                    match self.stage(&entries, staged, &mut pending, &mut written) {
                        Ok(appended) if durable || policy == SyncPolicy::Os => {
                            pending.push((reply, appended));
                            // A large group is written in pieces (one fsync
                            // still covers it): each write then fits the tail
                            // cache's reused slabs, where one write of the
                            // whole group needed a new, larger slab each time
                            // (memory the allocator kept after eviction).
                            if staged.len >= WRITE_BYTES {
                                let _ = self.write(staged, &mut pending, &mut written);
                            }
                        }
                        Ok(appended) => {
                            // Acknowledged once written (Kafka's acks=1); durable with the batch.
                            pending.push((reply, appended));
                            if self.write(staged, &mut pending, &mut written).is_ok() {
                                if let Some((reply, appended)) = written.pop() {
                                    let _ = reply.send(Ok(appended));
                                }
                            }
                        }
                        Err(e @ LedgerError::InvalidEntry(_)) => {
                            let _ = reply.send(Err(e));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                Command::Roll { reply } => {
                    if let Some(e) = failed {
                        let _ = reply.send(Err(e));
                        continue;
                    }
                    let result = self
                        .write(staged, &mut pending, &mut written)
                        .and_then(|()| self.sync_and_publish(&mut written))
                        .and_then(|()| self.roll_for(staged, 0));
                    let _ = reply.send(result);
                }
                Command::Close { reply } => close = Some(reply),
            }
        }
        let _ = self.write(staged, &mut pending, &mut written);
        if written.is_empty() && self.shared.failure().is_some() {
            return (close, None);
        }
        // With no appends waiting for the next batch there is nothing to
        // overlap with: make this batch durable here and save the hand-off
        // (this fsync also covers whatever the syncer still has). With
        // appends waiting, the syncer takes the fsync and the next batch is
        // written meanwhile.
        if policy == SyncPolicy::Os {
            publish(&self.shared, &self.active, self.state());
            for (reply, appended) in written {
                let _ = reply.send(Ok(appended));
            }
            return (close, None);
        }
        // Appends that arrived while this batch was being written: worth
        // overlapping this batch's fsync with writing them.
        let more_queued = self.shared.queued.load(std::sync::atomic::Ordering::Acquire) > 0;
        if !more_queued || close.is_some() {
            let _ = self.sync_and_publish(&mut written);
            return (close, None);
        }
        let job = SyncJob {
            segment: Arc::clone(&self.active),
            state: self.state(),
            replies: written,
            sync: true,
            done: None,
        };
        (close, Some(job))
    }

    /// Encodes `entries` into `staged`, rolling the segment when one does not
    /// fit. A roll writes and syncs everything before it and answers those
    /// appends.
    fn stage(
        &mut self,
        entries: &[(NewEntry, u32)],
        staged: &mut Staged,
        pending: &mut Waiting,
        written: &mut Waiting,
    ) -> Result<Vec<Appended>, LedgerError> {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        for (e, _) in entries {
            if e.count == 0 {
                return Err(LedgerError::InvalidEntry("an entry holds at least one message".into()));
            }
            if e.payload.len() as u64 > config.max_entry_bytes {
                return Err(LedgerError::InvalidEntry(format!(
                    "entry of {} bytes exceeds the limit of {} bytes",
                    e.payload.len(),
                    config.max_entry_bytes
                )));
            }
        }
        let mut out = Vec::with_capacity(entries.len());
        let publish_time_ms = now_ms();
        for (e, payload_crc) in entries {
            let needed = (ENTRY_HEADER_LEN + e.payload.len()) as u64;
            let end = staged.end();
            let aged = self.next_entry_id > 0
                && publish_time_ms.saturating_sub(self.active.header.created_ms)
                    >= config.segment_max_age.as_millis() as i64;
            if end + needed > self.active.file.capacity() || aged {
                // Earlier entries (of this append too) go with the segment being sealed.
                self.write(staged, pending, written)?;
                self.sync_and_publish(written)?;
                self.roll_for(staged, needed)?;
            }
            let pos = staged.end();
            let meta = EntryMeta {
                base_offset: self.next_offset,
                count: e.count,
                format: e.format,
                flags: e.flags,
                publish_time_ms,
                max_timestamp_ms: if e.max_timestamp_ms < 0 { publish_time_ms } else { e.max_timestamp_ms },
            };
            encode_entry_header_with_crc(&meta, e.payload.len(), *payload_crc, &mut staged.headers);
            staged.len += needed;
            staged.payloads.push(e.payload.clone());
            self.max_ts = self.max_ts.max(meta.max_timestamp_ms);
            if self.next_entry_id == 0 || pos - self.last_point_pos >= config.index_interval_bytes {
                self.points.push(IndexPoint {
                    offset: meta.base_offset,
                    position: pos,
                    entry_id: self.next_entry_id,
                    max_timestamp_ms: self.max_ts,
                });
                self.last_point_pos = pos;
            }
            out.push(Appended {
                base_offset: meta.base_offset,
                ledger_id: self.active.header.ledger_id,
                entry_id: self.next_entry_id,
                publish_time_ms,
            });
            self.next_offset = meta.next_offset();
            self.next_entry_id += 1;
            self.last_append_ms = publish_time_ms;
        }
        Ok(out)
    }

    /// Writes the staged bytes at the tail. On success the `pending` appends
    /// move to `written`; on failure they are answered with the error and the
    /// tail goes back to the last successful write, so no offset handed out
    /// is lost or handed out twice.
    fn write(&mut self, staged: &mut Staged, pending: &mut Waiting, written: &mut Waiting) -> Result<(), LedgerError> {
        if staged.len == 0 {
            written.append(pending);
            return Ok(());
        }
        // Headers and payloads go to the file as they are: the payloads are
        // copied once, into the segment's tail cache.
        let parts: Vec<&[u8]> =
            staged.headers.chunks(ENTRY_HEADER_LEN).zip(&staged.payloads).flat_map(|(h, p)| [h, &p[..]]).collect();
        if let Err(e) = self.active.file.write_parts_at(staged.start, &parts) {
            // Best effort: leave no complete-looking entry behind the tail.
            let _ = self.active.file.write_at(staged.start, &vec![0u8; staged.len as usize]);
            staged.clear();
            let error = LedgerError::io(format!("append to {}", self.active.path.display()), e);
            for (reply, _) in pending.drain(..) {
                let _ = reply.send(Err(clone_error(&error)));
            }
            self.revert();
            staged.start = self.write_pos;
            return Err(error);
        }
        self.write_pos = staged.end();
        staged.start = self.write_pos;
        staged.clear();
        // Index points may be published before the data: readers only use
        // points below the published end.
        let points = std::mem::take(&mut self.points);
        if !points.is_empty() {
            self.active.publish(|p| p.points.extend(points));
        }
        self.mark = Mark {
            write_pos: self.write_pos,
            next_offset: self.next_offset,
            next_entry_id: self.next_entry_id,
            max_ts: self.max_ts,
            last_point_pos: self.last_point_pos,
        };
        written.append(pending);
        Ok(())
    }

    /// fsync now, publish everything written, answer `written` (rolls and
    /// explicit rolls, which must not wait for the syncer).
    fn sync_and_publish(&mut self, written: &mut Waiting) -> Result<(), LedgerError> {
        let synced =
            self.active.file.sync().map_err(|e| format!("fsync of {} failed: {e}", self.active.path.display()));
        // The syncer may have failed an fsync meanwhile: then nothing written
        // since can be trusted, whatever this fsync says.
        if let Err(reason) = synced.and_then(|()| self.shared.failure().map_or(Ok(()), Err)) {
            if self.shared.failure().is_none() {
                self.shared.fail(reason.clone());
            }
            for (reply, _) in written.drain(..) {
                let _ =
                    reply.send(Err(LedgerError::Failed { ledger: self.ledger().to_owned(), reason: reason.clone() }));
            }
            return Err(LedgerError::Failed { ledger: self.ledger().to_owned(), reason });
        }
        publish(&self.shared, &self.active, self.state());
        for (reply, appended) in written.drain(..) {
            let _ = reply.send(Ok(appended));
        }
        Ok(())
    }

    /// Goes back to the state after the last successful write.
    fn revert(&mut self) {
        let m = self.mark;
        self.write_pos = m.write_pos;
        self.next_offset = m.next_offset;
        self.next_entry_id = m.next_entry_id;
        self.max_ts = m.max_ts;
        self.last_point_pos = m.last_point_pos;
        self.points.clear();
    }

    /// Seals the active segment and starts a new one that can hold `needed`
    /// bytes. The new segment is created first: if that fails nothing has
    /// changed. The sealed segment's index file is an optimisation written
    /// last; if it is lost, recovery rebuilds it by scanning.
    fn roll_for(&mut self, staged: &mut Staged, needed: u64) -> Result<(), LedgerError> {
        if let Some(reason) = self.shared.failure() {
            return Err(LedgerError::Failed { ledger: self.ledger().to_owned(), reason });
        }
        let empty = self.next_entry_id == 0;
        // An empty segment is reused rather than sealed, unless the entry is too big for it.
        if empty && self.active.file.capacity() >= SEGMENT_HEADER_LEN as u64 + needed {
            return Ok(());
        }
        let now = now_ms();
        let dir = &self.shared.dir;
        let backend = self.shared.backend.as_ref();
        let capacity = self.shared.config.segment_bytes.max(SEGMENT_HEADER_LEN as u64 + needed);
        let header = SegmentHeader {
            ledger_id: self.active.header.ledger_id + 1,
            base_offset: self.next_offset,
            created_ms: now,
            capacity,
        };
        let segment = Segment::create(backend, dir, header, now)?;
        let old = std::mem::replace(&mut self.active, Arc::clone(&segment));
        {
            let mut segments = self.shared.segments_mut();
            if empty {
                segments.retain(|s| s.header.ledger_id != old.header.ledger_id);
            }
            segments.push(segment);
        }
        if empty {
            let _ = backend.remove(&old.path);
        } else {
            old.publish(|p| p.sealed = true);
            let path = index_path(dir, old.header.ledger_id);
            if let Err(e) = backend.write_atomic(&path, &old.sealed_index(now).encode()) {
                tracing::warn!(ledger = %self.shared.name, file = %path.display(), error = %e,
                    "index file not written; recovery will rebuild it");
            }
        }
        self.write_pos = SEGMENT_HEADER_LEN as u64;
        self.next_entry_id = 0;
        self.max_ts = -1;
        self.last_point_pos = 0;
        self.points.clear();
        self.mark = Mark {
            write_pos: self.write_pos,
            next_offset: self.next_offset,
            next_entry_id: 0,
            max_ts: -1,
            last_point_pos: 0,
        };
        staged.start = self.write_pos;
        tracing::debug!(ledger = %self.shared.name, ledger_id = header.ledger_id, base_offset = header.base_offset, "segment rolled");
        Ok(())
    }
}

/// Makes `state` of `segment` visible: never backwards, so the writer's own
/// publications (at rolls) and the syncer's can interleave.
fn publish(shared: &Shared, segment: &Segment, state: Published) {
    segment.publish(|p| {
        p.data_len = p.data_len.max(state.data_len);
        p.end_offset = p.end_offset.max(state.end_offset);
        p.entries = p.entries.max(state.entries);
        p.max_timestamp_ms = p.max_timestamp_ms.max(state.max_ts);
        p.last_append_ms = p.last_append_ms.max(state.last_append_ms);
    });
    shared.end.send_if_modified(|end| {
        let advanced = state.end_offset > *end;
        *end = (*end).max(state.end_offset);
        advanced
    });
}

/// The syncer: takes written data in order, makes it durable with one fsync
/// per segment for everything queued, publishes it, and answers.
async fn sync_loop(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<SyncJob>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while let Ok(job) = rx.try_recv() {
            jobs.push(job);
        }
        let mut segments: Vec<Arc<Segment>> = Vec::new();
        for job in jobs.iter().filter(|j| j.sync) {
            if !segments.iter().any(|s| Arc::ptr_eq(s, &job.segment)) {
                segments.push(Arc::clone(&job.segment));
            }
        }
        let synced = if segments.is_empty() {
            Ok(())
        } else {
            tokio::task::spawn_blocking(move || {
                for segment in &segments {
                    segment.file.sync().map_err(|e| format!("fsync of {} failed: {e}", segment.path.display()))?;
                }
                Ok::<(), String>(())
            })
            .await
            .unwrap_or_else(|e| Err(format!("fsync task failed: {e}")))
        };
        if let Err(reason) = &synced {
            // After a failed fsync the kernel may have dropped the dirty
            // pages: nothing written since the last sync can be trusted.
            shared.fail(reason.clone());
        }
        for job in jobs {
            match &synced {
                // After a failure nothing more becomes visible: the writer's
                // state may count writes whose appends were answered Failed.
                Ok(()) if shared.failure().is_some() => {
                    let reason = shared.failure().unwrap_or_default();
                    for (reply, _) in job.replies {
                        let _ = reply
                            .send(Err(LedgerError::Failed { ledger: shared.name.clone(), reason: reason.clone() }));
                    }
                }
                Ok(()) => {
                    publish(&shared, &job.segment, job.state);
                    for (reply, appended) in job.replies {
                        let _ = reply.send(Ok(appended));
                    }
                }
                Err(reason) => {
                    for (reply, _) in job.replies {
                        let _ = reply
                            .send(Err(LedgerError::Failed { ledger: shared.name.clone(), reason: reason.clone() }));
                    }
                }
            }
            if let Some(done) = job.done {
                let _ = done.send(());
            }
        }
    }
}

fn batch_bytes(batch: &[Command]) -> u64 {
    batch
        .iter()
        .map(|c| match c {
            Command::Append { entries, .. } => {
                entries.iter().map(|(e, _)| e.payload.len() as u64 + ENTRY_HEADER_LEN as u64).sum()
            }
            _ => 0,
        })
        .sum()
}

/// Errors are answered to several appends of one batch.
fn clone_error(e: &LedgerError) -> LedgerError {
    match e {
        LedgerError::DiskFull { context } => LedgerError::DiskFull { context: context.clone() },
        LedgerError::Failed { ledger, reason } => {
            LedgerError::Failed { ledger: ledger.clone(), reason: reason.clone() }
        }
        LedgerError::InvalidEntry(m) => LedgerError::InvalidEntry(m.clone()),
        LedgerError::Closed(n) => LedgerError::Closed(n.clone()),
        other => LedgerError::Io { context: other.to_string(), source: std::io::Error::other("see context") },
    }
}

/// The text of a panic caught by `spawn_blocking`.
fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned()),
        Err(e) => e.to_string(),
    }
}

/// After the writer has stopped on a failure: answers every later command
/// with it until the ledger is dropped, so that callers get the reason
/// instead of a closed channel.
async fn refuse_all(shared: &Shared, mut rx: mpsc::Receiver<Command>, syncer: tokio::task::JoinHandle<()>) {
    let mut syncer = Some(syncer);
    let failed = || LedgerError::Failed {
        ledger: shared.name.clone(),
        reason: shared.failure().unwrap_or_else(|| "the ledger's writer stopped".to_owned()),
    };
    while let Some(cmd) = rx.recv().await {
        shared.queued.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        match cmd {
            Command::Append { reply, .. } => {
                let _ = reply.send(Err(failed()));
            }
            Command::Roll { reply } => {
                let _ = reply.send(Err(failed()));
            }
            Command::Close { reply } => {
                if let Some(syncer) = syncer.take() {
                    let _ = syncer.await;
                }
                let _ = reply.send(());
            }
        }
    }
}
