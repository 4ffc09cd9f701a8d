//! The offloader: one task per broker that, every second, rolls the active
//! segments that are due, uploads sealed segments not yet tiered and drops
//! from the manifest (and the bucket) what retention deleted locally. A
//! failure (an unreachable store) is retried with backoff per partition;
//! local data is kept meanwhile and produce is unaffected.

use std::{
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use object_store::{path::Path as ObjectPath, PutMode, PutOptions, PutPayload};
use polyport_ledger::ManagedLedger;

use super::{blocking, manifest, TieredSegment, Tiering, TieringError};
use crate::topics::{TopicName, Topics};

/// Longest wait between two attempts for a failing partition.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A partition begun on this broker.
pub(super) struct Partition {
    epoch: i64,
    /// The manifest as last read or written here.
    current: manifest::Versioned,
    failures: u32,
    retry_at: Option<Instant>,
    /// A newer epoch began: nothing more is done for it here.
    superseded: bool,
}

impl Partition {
    pub(super) fn new(epoch: i64, current: manifest::Versioned) -> Self {
        Self { epoch, current, failures: 0, retry_at: None, superseded: false }
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
        let mut failed = 0;
        for (partition, ledger) in topics.open_partitions() {
            // Twice: an append that passed its check just as the broker
            // stopped serving may land after the first roll.
            let both = async {
                let first = self.offload(&partition, &ledger, true).await?;
                Ok::<usize, TieringError>(first + self.offload(&partition, &ledger, true).await?)
            };
            let done = tokio::time::timeout_at(deadline, both).await;
            match done {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(partition = %partition, error = %e, "not offloaded at stop");
                    failed += 1;
                }
                Err(_) => {
                    tracing::warn!(partition = %partition, "not offloaded at stop: out of time");
                    failed += 1;
                }
            }
        }
        failed
    }

    /// One pass over `partition`: rolls its active segment if due (or if
    /// `roll_now` and it holds anything), drops what retention deleted,
    /// uploads what is sealed and not tiered. Returns segments uploaded.
    pub(super) async fn offload(
        &self,
        partition: &TopicName,
        ledger: &Arc<ManagedLedger>,
        roll_now: bool,
    ) -> Result<usize, TieringError> {
        let Some(epoch) = self.partitions().get(partition).filter(|p| !p.superseded).map(|p| p.epoch) else {
            return Ok(0);
        };
        let segments = ledger.segments();
        if let (Some(active), Some(id)) = (segments.last(), ledger.segment_ids().last()) {
            let age_ms = crate::topics::now_ms().saturating_sub(id.created_ms);
            if !active.sealed && active.entries > 0 && (roll_now || age_ms >= self.config.rollover.as_millis() as i64) {
                ledger.roll().await?;
            }
        }
        self.drop_deleted(partition, ledger, epoch).await?;
        let mut uploaded = 0;
        for segment in ledger.segments().into_iter().filter(|s| s.sealed) {
            let tiered = self.partitions().get(partition).map(|p| p.current.manifest.clone()).unwrap_or_default();
            let last = tiered.segments.last();
            if last.is_some_and(|l| segment.ledger_id <= l.ledger_id) {
                continue;
            }
            if last.is_some_and(|l| segment.base_offset != l.end_offset) {
                tracing::warn!(partition = %partition, ledger_id = segment.ledger_id, base = segment.base_offset,
                    tiered_end = tiered.tiered_end(), "segment does not continue the tiered log; not offloaded");
                break;
            }
            self.upload(partition, ledger, epoch, segment.ledger_id).await?;
            uploaded += 1;
        }
        Ok(uploaded)
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
        };
        self.change_manifest(partition, epoch, move |m| {
            m.segments.push(segment.clone());
            true
        })
        .await?;
        tracing::info!(partition = %partition, ledger_id, base = info.base_offset, end = info.end_offset,
            bytes = info.bytes, ms = started.elapsed().as_millis() as u64, "segment offloaded");
        Ok(())
    }

    /// Drops from the manifest the segments retention removed locally (they
    /// end at or below the local start), then deletes their objects.
    async fn drop_deleted(
        &self,
        partition: &TopicName,
        ledger: &Arc<ManagedLedger>,
        epoch: i64,
    ) -> Result<(), TieringError> {
        let start = ledger.range().start;
        let doomed = |m: &manifest::Manifest| m.segments.iter().take_while(|s| s.end_offset <= start).count();
        let cached = self.partitions().get(partition).map_or(0, |p| doomed(&p.current.manifest));
        if cached == 0 {
            return Ok(());
        }
        let mut keys = Vec::new();
        self.change_manifest(partition, epoch, |m| {
            let n = doomed(m);
            keys = m.segments.drain(..n).map(|s| s.key).collect();
            n > 0
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
        for (partition, ledger) in topics.open_partitions() {
            if !topics.serves(&partition) || !tiering.due(&partition) {
                continue;
            }
            let result = tiering.offload(&partition, &ledger, false).await;
            tiering.outcome(&partition, &result);
        }
    }
}

impl Tiering {
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
        if let Some(version) = current.version {
            let (store, key) = (Arc::clone(&self.store), manifest::key(partition));
            let deleted = blocking(move || Ok(store.delete(&key, crate::metadata::Expect::Version(version))?)).await;
            if let Err(e) = deleted {
                tracing::warn!(partition = %partition, error = %e, "manifest not deleted");
            }
        }
    }
}
