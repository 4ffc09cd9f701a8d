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
    format::{encode_entry_header, EntryMeta, IndexPoint, SegmentHeader, ENTRY_HEADER_LEN, SEGMENT_HEADER_LEN},
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
    Append { entries: Vec<NewEntry>, durable: bool, reply: Reply },
    Roll { reply: oneshot::Sender<Result<(), LedgerError>> },
    Close { reply: oneshot::Sender<()> },
}

/// The tail state, owned by the writer.
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub active: Arc<Segment>,
    /// Everything before this position is written.
    pub write_pos: u64,
    /// Everything before this position is durable.
    pub synced_pos: u64,
    pub next_offset: u64,
    pub next_entry_id: u64,
    pub max_ts: i64,
    pub last_point_pos: u64,
    pub points: Vec<IndexPoint>,
}

/// Appends staged in the active segment but not yet written.
struct Staged {
    buf: Vec<u8>,
    start: u64,
}

impl Writer {
    fn ledger(&self) -> &str {
        &self.shared.name
    }

    /// The task: receive, batch, hand the batch to a blocking thread, repeat.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
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
            let moved = tokio::task::spawn_blocking(move || {
                let closing = self.apply(batch);
                (self, closing)
            })
            .await;
            match moved {
                Ok((writer, close)) => {
                    self = writer;
                    closing = close;
                }
                // The blocking task panicked: the state is unknown; drop it.
                Err(_) => return,
            }
        }
        if let Some(reply) = closing {
            let _ = reply.send(());
        }
    }

    /// Processes a batch; returns the close reply if the batch closes the ledger.
    fn apply(&mut self, batch: Vec<Command>) -> Option<oneshot::Sender<()>> {
        let mut waiting: Vec<(Reply, Vec<Appended>)> = Vec::new();
        let mut staged = Staged { buf: Vec::new(), start: self.write_pos };
        let mut close = None;
        let mut failure: Option<LedgerError> =
            self.shared.failure().map(|reason| LedgerError::Failed { ledger: self.ledger().to_owned(), reason });
        let policy = self.shared.config.sync;
        for cmd in batch {
            match cmd {
                Command::Append { entries, durable, reply } => {
                    if let Some(e) = &failure {
                        let _ = reply.send(Err(clone_error(e)));
                        continue;
                    }
                    match self.stage(&entries, &mut staged, &mut waiting) {
                        Ok(appended) => {
                            if !durable && !matches!(policy, SyncPolicy::Os) {
                                // Acknowledged once written (Kafka's acks=1): flush and
                                // publish now, so that nothing answered can be reverted;
                                // the fsync follows with the batch.
                                if let Err(e) = self.flush(&mut staged) {
                                    let _ = reply.send(Err(clone_error(&e)));
                                    failure = Some(e);
                                    continue;
                                }
                                self.publish();
                                let _ = reply.send(Ok(appended));
                            } else {
                                waiting.push((reply, appended));
                            }
                        }
                        Err(e @ LedgerError::InvalidEntry(_)) => {
                            let _ = reply.send(Err(e));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(clone_error(&e)));
                            failure = Some(e);
                        }
                    }
                }
                Command::Roll { reply } => {
                    let result = self
                        .flush(&mut staged)
                        .and_then(|()| self.sync_and_publish())
                        .and_then(|()| self.roll(&mut staged));
                    let _ = reply.send(result);
                }
                Command::Close { reply } => close = Some(reply),
            }
        }
        let result = if failure.is_some() {
            Err(())
        } else {
            self.flush(&mut staged)
                .and_then(|()| match policy {
                    SyncPolicy::Os => {
                        self.publish();
                        Ok(())
                    }
                    _ => self.sync_and_publish(),
                })
                .map_err(|e| failure = Some(e))
        };
        match (result, failure) {
            (Ok(()), _) => {
                for (reply, appended) in waiting {
                    let _ = reply.send(Ok(appended));
                }
            }
            (Err(()), Some(e)) => {
                self.revert();
                for (reply, _) in waiting {
                    let _ = reply.send(Err(clone_error(&e)));
                }
            }
            (Err(()), None) => {}
        }
        if close.is_some() && self.shared.failure().is_none() {
            let _ = self.active.file.sync();
        }
        close
    }

    /// Encodes `entries` into `staged`, rolling the segment when one does not
    /// fit. A roll makes everything before it durable and visible, so the
    /// appends `waiting` for that are answered then.
    fn stage(
        &mut self,
        entries: &[NewEntry],
        staged: &mut Staged,
        waiting: &mut Vec<(Reply, Vec<Appended>)>,
    ) -> Result<Vec<Appended>, LedgerError> {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        for e in entries {
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
        for e in entries {
            let needed = (ENTRY_HEADER_LEN + e.payload.len()) as u64;
            let end = staged.start + staged.buf.len() as u64;
            let aged = self.next_entry_id > 0
                && publish_time_ms.saturating_sub(self.active.header.created_ms)
                    >= config.segment_max_age.as_millis() as i64;
            if end + needed > self.active.file.capacity() || aged {
                self.flush(staged)?;
                self.sync_and_publish()?;
                answer(waiting);
                self.roll_for(staged, needed)?;
            }
            let pos = staged.start + staged.buf.len() as u64;
            let meta = EntryMeta {
                base_offset: self.next_offset,
                count: e.count,
                format: e.format,
                flags: e.flags,
                publish_time_ms,
                max_timestamp_ms: if e.max_timestamp_ms < 0 { publish_time_ms } else { e.max_timestamp_ms },
            };
            encode_entry_header(&meta, &e.payload, &mut staged.buf);
            staged.buf.extend_from_slice(&e.payload);
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
        }
        Ok(out)
    }

    /// Writes the staged bytes at the tail.
    fn flush(&mut self, staged: &mut Staged) -> Result<(), LedgerError> {
        if staged.buf.is_empty() {
            return Ok(());
        }
        let result = self.active.file.write_at(staged.start, &staged.buf);
        if let Err(e) = result {
            // Best effort: leave no complete-looking entry behind the tail.
            let _ = self.active.file.write_at(staged.start, &vec![0u8; staged.buf.len()]);
            staged.buf.clear();
            return Err(LedgerError::io(format!("append to {}", self.active.path.display()), e));
        }
        self.write_pos = staged.start + staged.buf.len() as u64;
        staged.start = self.write_pos;
        staged.buf.clear();
        Ok(())
    }

    /// fsync, then make everything written visible.
    fn sync_and_publish(&mut self) -> Result<(), LedgerError> {
        if self.write_pos > self.synced_pos {
            if let Err(e) = self.active.file.sync() {
                // After a failed fsync the kernel may have dropped the dirty
                // pages: nothing written since the last sync can be trusted.
                let reason = format!("fsync of {} failed: {e}", self.active.path.display());
                self.shared.fail(reason.clone());
                return Err(LedgerError::Failed { ledger: self.ledger().to_owned(), reason });
            }
            self.synced_pos = self.write_pos;
        }
        self.publish();
        Ok(())
    }

    /// Makes everything written visible to readers and wakes waiting readers.
    fn publish(&mut self) {
        let (write_pos, next_offset, entries, max_ts) =
            (self.write_pos, self.next_offset, self.next_entry_id, self.max_ts);
        let points = std::mem::take(&mut self.points);
        self.active.publish(|p| {
            p.data_len = write_pos;
            p.end_offset = next_offset;
            p.entries = entries;
            p.max_timestamp_ms = max_ts;
            p.points.extend(points);
            p.last_append_ms = now_ms();
        });
        self.shared.end.send_if_modified(|end| std::mem::replace(end, next_offset) != next_offset);
    }

    /// Forgets what was written but not published (after a failed write).
    fn revert(&mut self) {
        let p = self.active.snapshot();
        self.write_pos = p.data_len;
        self.synced_pos = self.synced_pos.min(p.data_len);
        self.next_offset = p.end_offset;
        self.next_entry_id = p.entries;
        self.max_ts = p.max_timestamp_ms;
        self.points.clear();
        self.last_point_pos = p.points.last().map_or(0, |pt| pt.position);
    }

    fn roll(&mut self, staged: &mut Staged) -> Result<(), LedgerError> {
        self.roll_for(staged, 0)
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
        self.synced_pos = self.write_pos;
        self.next_entry_id = 0;
        self.max_ts = -1;
        self.last_point_pos = 0;
        self.points.clear();
        staged.start = self.write_pos;
        tracing::debug!(ledger = %self.shared.name, ledger_id = header.ledger_id, base_offset = header.base_offset, "segment rolled");
        Ok(())
    }
}

/// Answers the appends whose data is now durable and visible.
fn answer(waiting: &mut Vec<(Reply, Vec<Appended>)>) {
    for (reply, appended) in waiting.drain(..) {
        let _ = reply.send(Ok(appended));
    }
}

fn batch_bytes(batch: &[Command]) -> u64 {
    batch
        .iter()
        .map(|c| match c {
            Command::Append { entries, .. } => {
                entries.iter().map(|e| e.payload.len() as u64 + ENTRY_HEADER_LEN as u64).sum()
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
