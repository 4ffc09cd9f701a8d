//! The offloader: one task per broker that, every second, drops from the
//! manifest (and the bucket) what retention deleted locally, uploads sealed
//! segments not yet tiered, and uploads what was appended to the active
//! segment since its last chunk once `managedLedgerOffloadIntervalSeconds`
//! have passed. A failure (an unreachable store) is retried with backoff
//! per partition; local data is kept meanwhile and produce is unaffected.

use std::{
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use futures::StreamExt;
use object_store::{path::Path as ObjectPath, PutMode, PutOptions, PutPayload};
use polyport_ledger::ManagedLedger;

use super::{blocking, manifest, TieredSegment, Tiering, TieringError};
use crate::topics::{TopicName, Topics};

/// Longest wait between two attempts for a failing partition.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Chunks an active segment may have before it rolls: keeps restores to a
/// bounded number of downloads (done 16 at a time), and a trickle of
/// records from making a segment per interval (at 10 s, one in 20 minutes).
const MAX_TAIL_CHUNKS: u32 = 120;

/// A partition begun on this broker.
pub(super) struct Partition {
    epoch: i64,
    /// The manifest as last read or written here.
    current: manifest::Versioned,
    failures: u32,
    retry_at: Option<Instant>,
    /// A newer epoch began: nothing more is done for it here.
    superseded: bool,
    /// When the active segment's last chunk went up.
    tail_at: Option<Instant>,
    /// The durable cursors as last written to the metadata store.
    pub(super) cursors: super::cursors::Cursors,
}

impl Partition {
    pub(super) fn new(epoch: i64, current: manifest::Versioned, cursors: super::cursors::Cursors) -> Self {
        Self { epoch, current, failures: 0, retry_at: None, superseded: false, tail_at: None, cursors }
    }
}

impl Tiering {
    /// Starts the offloader; it ends when `topics` is dropped.
    pub fn start(self: &Arc<Self>, topics: Weak<Topics>) {
        tokio::spawn(run(Arc::downgrade(self), topics));
    }

    /// Rolls and uploads every open partition now (a graceful stop, after
    /// the broker stopped acknowledging and before it gives its partitions
    /// up), until `deadline`. Returns how many partitions failed.
    pub async fn flush_all(&self, topics: &Topics, deadline: tokio::time::Instant) -> usize {
        let failed = std::sync::atomic::AtomicUsize::new(0);
        futures::stream::iter(topics.open_partitions())
            .for_each_concurrent(PARALLEL_PARTITIONS, |(partition, ledger)| {
                let failed = &failed;
                async move {
                    // Twice: an append that passed its check just as the
                    // broker stopped serving may land after the first roll.
                    let both = async {
                        let first = self.offload(&partition, &ledger, true).await?;
                        Ok::<usize, TieringError>(first + self.offload(&partition, &ledger, true).await?)
                    };
                    let why = match tokio::time::timeout_at(deadline, both).await {
                        Ok(Ok(_)) => return,
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "out of time (brokerShutdownTimeoutMs)".to_owned(),
                    };
                    tracing::warn!(partition = %partition, error = %why, "not offloaded at stop");
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .await;
        failed.into_inner()
    }

    /// One pass over `partition`: drops what retention deleted, uploads
    /// what is sealed and not tiered, then the active segment's new bytes
    /// if its last chunk is `managedLedgerOffloadIntervalSeconds` old. With
    /// `flush` (a graceful stop), the active segment rolls first, so that
    /// everything goes up sealed. Returns segments uploaded.
    pub(super) async fn offload(
        &self,
        partition: &TopicName,
        ledger: &Arc<ManagedLedger>,
        flush: bool,
    ) -> Result<usize, TieringError> {
        let Some(epoch) = self.partitions().get(partition).filter(|p| !p.superseded).map(|p| p.epoch) else {
            return Ok(0);
        };
        if flush && ledger.segments().last().is_some_and(|a| !a.sealed && a.entries > 0) {
            ledger.roll().await?;
        }
        self.drop_deleted(partition, ledger, epoch).await?;
        // (ledger id, end offset) of the last tiered segment.
        let last_tiered = || {
            self.partitions()
                .get(partition)
                .and_then(|p| p.current.manifest.segments.last().map(|l| (l.ledger_id, l.end_offset)))
        };
        let newest = last_tiered();
        let pending: Vec<_> = ledger
            .segments()
            .into_iter()
            .filter(|s| s.sealed && newest.is_none_or(|(id, _)| s.ledger_id > id))
            .collect();
        let mut uploaded = 0;
        for segment in pending {
            if let Some((_, end)) = last_tiered().filter(|(_, end)| segment.base_offset != *end) {
                tracing::warn!(partition = %partition, ledger_id = segment.ledger_id, base = segment.base_offset,
                    tiered_end = end, "segment does not continue the tiered log; not offloaded");
                break;
            }
            self.upload(partition, ledger, epoch, segment.ledger_id).await?;
            uploaded += 1;
        }
        if !flush {
            self.upload_tail(partition, ledger, epoch).await?;
        }
        self.sync_cursors(partition, ledger).await?;
        if !flush {
            self.evict_local(partition, ledger).await?;
        }
        Ok(uploaded)
    }

    /// Deletes the local copies of tiered segments uploaded more than
    /// `managedLedgerOffloadDeletionLagMs` ago: the ledger reads them from
    /// the bucket from then on (Pulsar's offload deletion lag).
    async fn evict_local(&self, partition: &TopicName, ledger: &Arc<ManagedLedger>) -> Result<(), TieringError> {
        let lag_ms = i64::try_from(self.config.deletion_lag.as_millis()).unwrap_or(i64::MAX);
        let now = crate::topics::now_ms();
        let old: Vec<TieredSegment> = match self.partitions().get(partition) {
            Some(p) => p.current.manifest.segments.iter().filter(|s| now - s.offloaded_ms >= lag_ms).cloned().collect(),
            None => return Ok(()),
        };
        if old.is_empty() {
            return Ok(());
        }
        let local = ledger.local_ids();
        let due: Vec<_> =
            old.iter().filter(|s| local.contains(&s.ledger_id)).map(super::restore::remote_segment).collect();
        if due.is_empty() {
            return Ok(());
        }
        let (target, source) = (Arc::clone(ledger), self.source());
        let evicted = blocking(move || {
            let mut evicted = 0;
            for segment in due {
                if target.evict_to_remote(segment, Arc::clone(&source))? {
                    evicted += 1;
                }
            }
            Ok(evicted)
        })
        .await?;
        if evicted > 0 {
            tracing::info!(partition = %partition, evicted, "local copies of tiered segments deleted (managedLedgerOffloadDeletionLagMs)");
        }
        Ok(())
    }

    /// Uploads what was appended to the active segment since its last chunk,
    /// if that chunk is an interval old; rolls the segment instead once it
    /// has [`MAX_TAIL_CHUNKS`] (the next pass uploads it sealed).
    async fn upload_tail(
        &self,
        partition: &TopicName,
        ledger: &Arc<ManagedLedger>,
        epoch: i64,
    ) -> Result<(), TieringError> {
        let (manifest, tail_at) = match self.partitions().get(partition) {
            Some(p) => (p.current.manifest.clone(), p.tail_at),
            None => return Ok(()),
        };
        if tail_at.is_some_and(|at| at.elapsed() < self.config.interval) {
            return Ok(());
        }
        let Some(active) = ledger.segment_ids().pop() else { return Ok(()) };
        // Only right after the sealed segments: the log in the bucket has no gap.
        let sealed_end = manifest.segments.last().map(|s| s.end_offset);
        if sealed_end.is_some_and(|end| end != active.base_offset) {
            return Ok(());
        }
        let previous = manifest
            .tail
            .clone()
            .filter(|t| t.epoch == epoch && t.ledger_id == active.ledger_id && t.created_ms == active.created_ms);
        if previous.as_ref().is_some_and(|t| t.chunks >= MAX_TAIL_CHUNKS) {
            ledger.roll().await?;
            return Ok(());
        }
        let from = previous.as_ref().map_or(0, |t| t.data_len);
        let source = Arc::clone(ledger);
        let Some(part) = blocking(move || Ok(source.active_tail(from)?)).await? else { return Ok(()) };
        if part.id != active {
            return Ok(()); // It rolled meanwhile: the next pass uploads it sealed.
        }
        let mut tail = previous.unwrap_or_else(|| manifest::Tail {
            ledger_id: active.ledger_id,
            base_offset: active.base_offset,
            created_ms: active.created_ms,
            epoch,
            key_prefix: self.object_key(partition, epoch, active.ledger_id).replace(".log", ".tail"),
            chunks: 0,
            data_len: 0,
            end_offset: active.base_offset,
        });
        // Overwritten if an earlier attempt's manifest update failed: chunk
        // keys carry this epoch, which only this broker writes in.
        let key = tail.chunk_key(tail.chunks);
        let options = PutOptions { mode: PutMode::Overwrite, ..Default::default() };
        self.objects
            .put_opts(&ObjectPath::from(key.as_str()), PutPayload::from_bytes(part.bytes), options)
            .await
            .map_err(|e| self.objects_error(e))?;
        let expected = manifest.tail.clone();
        tail.chunks += 1;
        tail.data_len = part.data_len;
        tail.end_offset = part.end_offset;
        self.change_manifest(partition, epoch, |m| {
            // Changed meanwhile (a sealed upload cleared it): try again next pass.
            if m.tail != expected {
                return false;
            }
            m.tail = Some(tail.clone());
            true
        })
        .await?;
        if let Some(p) = self.partitions().get_mut(partition) {
            p.tail_at = Some(Instant::now());
        }
        tracing::debug!(partition = %partition, key, end = part.end_offset, "segment tail offloaded");
        Ok(())
    }

    /// Uploads sealed segment `ledger_id` and adds it to the manifest.
    async fn upload(
        &self,
        partition: &TopicName,
        ledger: &Arc<ManagedLedger>,
        epoch: i64,
        ledger_id: u64,
    ) -> Result<(), TieringError> {
        let source = Arc::clone(ledger);
        let (info, id, bytes) = blocking(move || Ok(source.sealed_segment(ledger_id)?)).await?;
        let key = self.object_key(partition, epoch, ledger_id);
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        let started = Instant::now();
        match self.objects.put_opts(&ObjectPath::from(key.as_str()), PutPayload::from_bytes(bytes), options).await {
            Ok(_) => {}
            // Our own earlier attempt (its manifest update failed): one
            // epoch writes one segment id once, so the bytes are these.
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(self.objects_error(e)),
        }
        let segment = TieredSegment {
            ledger_id,
            base_offset: info.base_offset,
            end_offset: info.end_offset,
            created_ms: id.created_ms,
            bytes: info.bytes,
            entries: info.entries,
            max_timestamp_ms: info.max_timestamp_ms,
            epoch,
            key,
            offloaded_ms: crate::topics::now_ms(),
        };
        // The tail of this segment (or of an older one, uploaded by an
        // earlier owner and imported here) is now in the sealed object.
        let mut replaced = None;
        self.change_manifest(partition, epoch, |m| {
            m.segments.push(segment.clone());
            if m.tail.as_ref().is_some_and(|t| t.ledger_id <= ledger_id) {
                replaced = m.tail.take();
            }
            true
        })
        .await?;
        if let Some(tail) = replaced {
            self.delete_chunks(partition, &tail).await;
        }
        tracing::info!(partition = %partition, ledger_id, base = info.base_offset, end = info.end_offset,
            bytes = info.bytes, ms = started.elapsed().as_millis() as u64, "segment offloaded");
        Ok(())
    }

    /// Drops from the manifest the segments retention removed locally (they
    /// end at or below the local start), then deletes their objects; records
    /// the log's start (moved by retention or DeleteRecords).
    async fn drop_deleted(
        &self,
        partition: &TopicName,
        ledger: &Arc<ManagedLedger>,
        epoch: i64,
    ) -> Result<(), TieringError> {
        let start = ledger.range().start;
        let doomed = |m: &manifest::Manifest| m.segments.iter().take_while(|s| s.end_offset <= start).count();
        let stale = |m: &manifest::Manifest| doomed(m) > 0 || m.start < start;
        if !self.partitions().get(partition).is_some_and(|p| stale(&p.current.manifest)) {
            return Ok(());
        }
        let mut keys = Vec::new();
        self.change_manifest(partition, epoch, |m| {
            if !stale(m) {
                return false;
            }
            let n = doomed(m);
            keys = m.segments.drain(..n).map(|s| s.key).collect();
            // The log's start, which DeleteRecords may move inside a segment.
            m.start = m.start.max(start);
            true
        })
        .await?;
        for key in keys {
            if let Err(e) = self.objects.delete(&ObjectPath::from(key.as_str())).await {
                tracing::warn!(partition = %partition, key, error = %e, "tiered segment not deleted; the bucket keeps it");
            }
        }
        Ok(())
    }

    /// Applies `change` to the manifest by compare-and-set while `epoch` is
    /// its last; `change` answers whether it changed anything.
    async fn change_manifest(
        &self,
        partition: &TopicName,
        epoch: i64,
        mut change: impl FnMut(&mut manifest::Manifest) -> bool,
    ) -> Result<(), TieringError> {
        let mut current = match self.partitions().get(partition) {
            Some(p) => p.current.clone(),
            None => return Ok(()),
        };
        for _ in 0..16 {
            if let Some(newer) = current.manifest.last_epoch().filter(|last| *last != epoch) {
                if let Some(p) = self.partitions().get_mut(partition) {
                    p.superseded = true;
                }
                return Err(TieringError::Superseded { partition: partition.to_string(), epoch, newer });
            }
            let mut next = current.manifest.clone();
            if !change(&mut next) {
                return Ok(());
            }
            let (store, p, m, v) = (Arc::clone(&self.store), partition.clone(), next.clone(), current.version);
            match blocking(move || manifest::write(store.as_ref(), &p, &m, v)).await? {
                Some(version) => {
                    if let Some(p) = self.partitions().get_mut(partition) {
                        p.current = manifest::Versioned { manifest: next, version: Some(version) };
                    }
                    return Ok(());
                }
                None => {
                    let (store, p) = (Arc::clone(&self.store), partition.clone());
                    current = blocking(move || manifest::read(store.as_ref(), &p)).await?;
                }
            }
        }
        Err(TieringError::Manifest { key: manifest::key(partition), reason: "too many concurrent changes".into() })
    }

    /// Records the outcome of a pass over `partition` for its backoff.
    fn outcome(&self, partition: &TopicName, result: &Result<usize, TieringError>) {
        let mut partitions = self.partitions();
        let Some(p) = partitions.get_mut(partition) else { return };
        match result {
            Ok(_) => {
                if p.failures > 0 {
                    tracing::info!(partition = %partition, "offload works again");
                }
                p.failures = 0;
                p.retry_at = None;
            }
            Err(TieringError::Superseded { .. }) => {
                p.superseded = true;
                tracing::info!(partition = %partition, "a newer owner took over; offload stops here");
            }
            Err(e) => {
                p.failures = p.failures.saturating_add(1);
                let backoff = Duration::from_secs(1u64 << p.failures.min(5)).min(MAX_BACKOFF);
                p.retry_at = Some(Instant::now() + backoff);
                tracing::warn!(partition = %partition, error = %e, retry_in_s = backoff.as_secs(),
                    "offload failed; local data is kept and the upload retried");
            }
        }
    }

    fn due(&self, partition: &TopicName) -> bool {
        self.partitions()
            .get(partition)
            .is_some_and(|p| !p.superseded && p.retry_at.is_none_or(|at| Instant::now() >= at))
    }
}

async fn run(tiering: Weak<Tiering>, topics: Weak<Topics>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (Some(tiering), Some(topics)) = (tiering.upgrade(), topics.upgrade()) else { return };
        let due: Vec<_> = topics
            .open_partitions()
            .into_iter()
            .filter(|(partition, _)| topics.serves(partition) && tiering.due(partition))
            .collect();
        // A few at a time: one partition's large upload (or a slow store)
        // must not hold back the others' chunks.
        futures::stream::iter(due)
            .for_each_concurrent(PARALLEL_PARTITIONS, |(partition, ledger)| {
                let tiering = &tiering;
                async move {
                    let result = tiering.offload(&partition, &ledger, false).await;
                    tiering.outcome(&partition, &result);
                }
            })
            .await;
    }
}

/// Partitions offloaded at once.
const PARALLEL_PARTITIONS: usize = 8;

impl Tiering {
    /// Deletes the chunks of `tail` (no longer in the manifest); best effort.
    async fn delete_chunks(&self, partition: &TopicName, tail: &manifest::Tail) {
        for i in 0..tail.chunks {
            let key = tail.chunk_key(i);
            if let Err(e) = self.objects.delete(&ObjectPath::from(key.as_str())).await {
                tracing::warn!(partition = %partition, key, error = %e, "tail chunk not deleted; the bucket keeps it");
            }
        }
    }

    /// Deletes `partition`'s tiered data, its topic being deleted: its
    /// objects, then its manifest. Best effort: what fails is logged (a
    /// topic created again later with the same name ignores a manifest left
    /// behind, by its incarnation).
    pub async fn delete_partition(&self, partition: &TopicName) {
        self.forget(partition);
        let (store, p) = (Arc::clone(&self.store), partition.clone());
        let current = match blocking(move || manifest::read(store.as_ref(), &p)).await {
            Ok(current) => current,
            Err(e) => {
                tracing::warn!(partition = %partition, error = %e, "tiered data not deleted");
                return;
            }
        };
        for segment in &current.manifest.segments {
            if let Err(e) = self.objects.delete(&ObjectPath::from(segment.key.as_str())).await {
                tracing::warn!(partition = %partition, key = %segment.key, error = %e, "tiered segment not deleted");
            }
        }
        if let Some(tail) = &current.manifest.tail {
            self.delete_chunks(partition, tail).await;
        }
        if let Err(e) = self.delete_cursors(partition).await {
            tracing::warn!(partition = %partition, error = %e, "stored cursors not deleted");
        }
        if let Some(version) = current.version {
            let (store, key) = (Arc::clone(&self.store), manifest::key(partition));
            let deleted = blocking(move || Ok(store.delete(&key, crate::metadata::Expect::Version(version))?)).await;
            if let Err(e) = deleted {
                tracing::warn!(partition = %partition, error = %e, "manifest not deleted");
            }
        }
    }
}
