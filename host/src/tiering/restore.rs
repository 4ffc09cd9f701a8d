//! Before a partition opens on a broker that now owns it: the local
//! directory is made to agree with the manifest (see the module docs of
//! `tiering`), then the new epoch is added.

use std::{collections::HashSet, path::PathBuf, sync::Arc};

use object_store::path::Path as ObjectPath;
use polyport_ledger::{tier, ManagedLedger, RemoteSegment};

use super::{blocking, manifest, offload::Partition, EpochStart, Tiering, TieringError};
use crate::topics::TopicName;

/// What [`Tiering::prepare`] found.
#[derive(Debug)]
pub struct Prepared {
    /// Tiered segments older than the local ones, read from the bucket on demand.
    pub remote: Vec<RemoteSegment>,
    /// The manifest's version then (`None`: absent).
    pub version: Option<u64>,
}

/// The file in a ledger directory naming the epoch it was last written in.
const EPOCH_FILE: &str = "EPOCH";

impl Tiering {
    /// Makes closed ledger directory `dir` hold `partition`'s log before it
    /// opens in `epoch`, for a topic created at `incarnation` (ms); a new
    /// active segment gets `capacity` bytes. Returns the tiered segments
    /// older than the local ones, to attach as remote segments once the
    /// ledger is open (they are fetched when read, not now: a restore
    /// downloads only the tail, whatever the size of the log), and the
    /// manifest version it followed, for [`begin`](Self::begin).
    pub async fn prepare(
        &self,
        partition: &TopicName,
        dir: PathBuf,
        epoch: i64,
        incarnation: i64,
        capacity: u64,
    ) -> Result<Prepared, TieringError> {
        let current = self.read_manifest(partition, incarnation).await?;
        if let Some(newer) = current.manifest.last_epoch().filter(|last| *last > epoch) {
            return Err(TieringError::Superseded { partition: partition.to_string(), epoch, newer });
        }
        let backend = Arc::clone(&self.backend);
        let scan_dir = dir.clone();
        let (marker, local) = blocking(move || {
            let marker = backend
                .read_file(&scan_dir.join(EPOCH_FILE))
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.trim().parse::<i64>().ok());
            Ok((marker, tier::local_segments(&scan_dir, backend.as_ref())?))
        })
        .await?;
        let m = &current.manifest;
        // Never tiered: the local data is all there is. Or this directory
        // was written in the last epoch: nobody wrote since, and its tail
        // (sealed after the last upload, or never sealed) is the log's;
        // what is older than its segments is in the bucket only.
        if (m.epochs.is_empty() && m.segments.is_empty()) || (marker.is_some() && marker == m.last_epoch()) {
            let first_local = local.iter().map(|l| l.ledger_id).min().unwrap_or(u64::MAX);
            let remote = m.segments.iter().filter(|s| s.ledger_id < first_local).map(remote_segment).collect();
            return Ok(Prepared { remote, version: current.version });
        }
        // Otherwise the log is the manifest's. Local segments are kept only
        // as the newest tiered segments, each sealed at the manifest's end
        // for it (the same bytes); the older tiered ones stay remote. The
        // others are a tail only this broker saw (a later owner continued
        // the log without it: even a segment of the same identity may have
        // grown here after its last upload) or data retention dropped: they go.
        let here = |s: &manifest::TieredSegment| {
            local.iter().any(|l| l.id == Some(s.id()) && l.sealed_end == Some(s.end_offset))
        };
        let mut keep_from = m.segments.len();
        while keep_from > 0 && here(&m.segments[keep_from - 1]) {
            keep_from -= 1;
        }
        let kept: HashSet<u64> = m.segments[keep_from..].iter().map(|s| s.ledger_id).collect();
        let remote: Vec<RemoteSegment> = m.segments[..keep_from].iter().map(remote_segment).collect();
        let backend = Arc::clone(&self.backend);
        let scan_dir = dir.clone();
        let doomed: Vec<u64> = local.iter().map(|l| l.ledger_id).filter(|id| !kept.contains(id)).collect();
        let removed = doomed.len();
        blocking(move || {
            for ledger_id in doomed {
                tier::remove_segment(&scan_dir, backend.as_ref(), ledger_id)?;
            }
            Ok(())
        })
        .await?;
        let mut downloaded = 0usize;
        let continues = |t: &&manifest::Tail| match m.segments.last() {
            Some(last) => t.ledger_id > last.ledger_id && t.base_offset == last.end_offset,
            None => true,
        };
        if let Some(tail) = m.tail.as_ref().filter(continues) {
            self.restore_tail(partition, &dir, tail).await?;
            downloaded += 1;
        } else if kept.is_empty() {
            // Nothing local: the log goes on after the last tiered segment.
            if let Some(last) = m.segments.last() {
                let (backend, empty_dir, id, base) =
                    (Arc::clone(&self.backend), dir.clone(), last.ledger_id + 1, last.end_offset);
                blocking(move || Ok(tier::create_active(&empty_dir, backend.as_ref(), id, base, capacity)?)).await?;
            }
        }
        tracing::info!(partition = %partition, epoch, removed, kept = kept.len(), remote = remote.len(), downloaded,
            tiered_end = m.tiered_end(), "local data made to agree with the tiered log");
        Ok(Prepared { remote, version: current.version })
    }

    /// Joins the chunks of the previous owner's active segment into one
    /// sealed segment in `dir`.
    async fn restore_tail(
        &self,
        partition: &TopicName,
        dir: &std::path::Path,
        tail: &manifest::Tail,
    ) -> Result<(), TieringError> {
        use futures::{StreamExt, TryStreamExt};
        let chunks: Vec<bytes::Bytes> = futures::stream::iter(0..tail.chunks)
            .map(|i| async move {
                let key = tail.chunk_key(i);
                let got = self.objects.get(&ObjectPath::from(key.as_str())).await.map_err(|e| self.objects_error(e))?;
                got.bytes().await.map_err(|e| self.objects_error(e))
            })
            .buffered(16)
            .try_collect()
            .await?;
        let mut joined = Vec::with_capacity(chunks.iter().map(bytes::Bytes::len).sum());
        for chunk in &chunks {
            joined.extend_from_slice(chunk);
        }
        if joined.len() as u64 != tail.data_len {
            return Err(TieringError::Manifest {
                key: manifest::key(partition),
                reason: format!("the tail's {} chunks hold {} bytes, not {}", tail.chunks, joined.len(), tail.data_len),
            });
        }
        let (backend, import_dir) = (Arc::clone(&self.backend), dir.to_owned());
        let info = blocking(move || Ok(tier::import_segment(&import_dir, backend.as_ref(), &joined)?)).await?;
        if info.end_offset != tail.end_offset {
            return Err(TieringError::Manifest {
                key: manifest::key(partition),
                reason: format!("the tail ends at offset {}, the manifest says {}", info.end_offset, tail.end_offset),
            });
        }
        Ok(())
    }

    /// Adds `epoch` to the manifest once the ledger is open (before it
    /// serves anything), and starts offloading it. The manifest must still
    /// be the one [`prepare`](Self::prepare) followed (`prepared`): a former
    /// owner's last upload in between would make the local log disagree
    /// with it, so the open fails (retriable) and starts again.
    pub async fn begin(
        &self,
        partition: &TopicName,
        ledger: &Arc<ManagedLedger>,
        dir: PathBuf,
        epoch: i64,
        incarnation: i64,
        prepared: Option<u64>,
    ) -> Result<(), TieringError> {
        let changed = || TieringError::Manifest {
            key: manifest::key(partition),
            reason: "changed while the partition was being restored (a former owner's last upload); try again".into(),
        };
        let mut current = self.read_manifest(partition, incarnation).await?;
        if current.version != prepared {
            return Err(changed());
        }
        // Records deleted by an earlier owner (DeleteRecords) stay deleted.
        if current.manifest.start > ledger.range().start {
            ledger.delete_records_before(current.manifest.start.min(ledger.range().end)).await?;
        }
        match current.manifest.last_epoch() {
            Some(newer) if newer > epoch => {
                return Err(TieringError::Superseded { partition: partition.to_string(), epoch, newer });
            }
            // Opened again in the same epoch (after a close on this broker).
            Some(last) if last == epoch => {}
            _ => {
                let start = EpochStart { epoch, broker: self.broker.clone(), start: ledger.range().end };
                current.manifest.begin(start);
                let (store, p, m, v) =
                    (Arc::clone(&self.store), partition.clone(), current.manifest.clone(), current.version);
                match blocking(move || manifest::write(store.as_ref(), &p, &m, v)).await? {
                    Some(version) => current.version = Some(version),
                    None => return Err(changed()),
                }
            }
        }
        let backend = Arc::clone(&self.backend);
        blocking(move || {
            backend.write_atomic(&dir.join(EPOCH_FILE), epoch.to_string().as_bytes()).map_err(|e| {
                TieringError::Ledger(polyport_ledger::LedgerError::io(format!("write {}", dir.display()), e))
            })
        })
        .await?;
        let cursors = self.restore_cursors(partition, ledger).await?;
        self.partitions().insert(partition.clone(), Partition::new(epoch, current, cursors));
        Ok(())
    }

    /// `partition`'s manifest; one of an earlier topic of the same name
    /// (not `incarnation`) reads as empty, and is replaced at the next write.
    pub(super) async fn read_manifest(
        &self,
        partition: &TopicName,
        incarnation: i64,
    ) -> Result<manifest::Versioned, TieringError> {
        let (store, p) = (Arc::clone(&self.store), partition.clone());
        let mut current = blocking(move || manifest::read(store.as_ref(), &p)).await?;
        if current.manifest.incarnation != incarnation {
            current.manifest = manifest::Manifest { incarnation, ..Default::default() };
        }
        Ok(current)
    }
}

/// A manifest segment as the ledger's remote segments know it.
pub(super) fn remote_segment(s: &manifest::TieredSegment) -> RemoteSegment {
    RemoteSegment {
        ledger_id: s.ledger_id,
        base_offset: s.base_offset,
        end_offset: s.end_offset,
        created_ms: s.created_ms,
        bytes: s.bytes,
        entries: s.entries,
        max_timestamp_ms: s.max_timestamp_ms,
        key: s.key.clone(),
    }
}
