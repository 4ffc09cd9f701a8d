//! Before a partition opens on a broker that now owns it: the local
//! directory is made to agree with the manifest (see the module docs of
//! `tiering`), then the new epoch is added.

use std::{collections::HashSet, path::PathBuf, sync::Arc};

use object_store::path::Path as ObjectPath;
use polyport_ledger::{tier, ManagedLedger};

use super::{blocking, manifest, offload::Partition, EpochStart, Tiering, TieringError};
use crate::topics::TopicName;

/// The file in a ledger directory naming the epoch it was last written in.
const EPOCH_FILE: &str = "EPOCH";

impl Tiering {
    /// Makes closed ledger directory `dir` hold `partition`'s log before it
    /// opens in `epoch`, for a topic created at `incarnation` (ms).
    pub async fn prepare(
        &self,
        partition: &TopicName,
        dir: PathBuf,
        epoch: i64,
        incarnation: i64,
    ) -> Result<(), TieringError> {
        let current = self.read_manifest(partition, incarnation).await?;
        if let Some(newer) = current.manifest.last_epoch().filter(|last| *last > epoch) {
            return Err(TieringError::Superseded { partition: partition.to_string(), epoch, newer });
        }
        let backend = Arc::clone(&self.backend);
        let marker_dir = dir.clone();
        let marker = blocking(move || {
            Ok(backend
                .read_file(&marker_dir.join(EPOCH_FILE))
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.trim().parse::<i64>().ok()))
        })
        .await?;
        let m = &current.manifest;
        // Never tiered: the local data is all there is. Or this directory
        // was written in the last epoch: nobody wrote since, and its tail
        // (sealed after the last upload, or never sealed) is the log's.
        if (m.epochs.is_empty() && m.segments.is_empty()) || (marker.is_some() && marker == m.last_epoch()) {
            return Ok(());
        }
        let wanted = m.segments.clone();
        let backend = Arc::clone(&self.backend);
        let scan_dir = dir.clone();
        let wanted_ids: Vec<(tier::SegmentId, u64)> = wanted.iter().map(|s| (s.id(), s.end_offset)).collect();
        // A local segment is kept only if it is one the manifest lists,
        // sealed at the same end (the same bytes). The others are a tail
        // only this broker saw (a later owner continued the log without it:
        // even a segment of the same identity may have grown here after its
        // last upload) or data retention has dropped: they go.
        let (kept, removed) = blocking(move || {
            let (mut kept, mut removed) = (HashSet::new(), 0usize);
            for local in tier::local_segments(&scan_dir, backend.as_ref())? {
                let same = local.id.zip(local.sealed_end).is_some_and(|found| wanted_ids.contains(&found));
                if same {
                    kept.insert(local.ledger_id);
                } else {
                    tier::remove_segment(&scan_dir, backend.as_ref(), local.ledger_id)?;
                    removed += 1;
                }
            }
            Ok((kept, removed))
        })
        .await?;
        let mut downloaded = 0usize;
        for segment in wanted.iter().filter(|s| !kept.contains(&s.ledger_id)) {
            let bytes = self
                .objects
                .get(&ObjectPath::from(segment.key.as_str()))
                .await
                .map_err(|e| self.objects_error(e))?
                .bytes()
                .await
                .map_err(|e| self.objects_error(e))?;
            let (backend, import_dir) = (Arc::clone(&self.backend), dir.clone());
            let info = blocking(move || Ok(tier::import_segment(&import_dir, backend.as_ref(), &bytes)?)).await?;
            if info.base_offset != segment.base_offset || info.end_offset != segment.end_offset {
                return Err(TieringError::Manifest {
                    key: manifest::key(partition),
                    reason: format!(
                        "object {} holds offsets {}..{}, the manifest says {}..{}",
                        segment.key, info.base_offset, info.end_offset, segment.base_offset, segment.end_offset
                    ),
                });
            }
            downloaded += 1;
        }
        let continues = |t: &&manifest::Tail| match m.segments.last() {
            Some(last) => t.ledger_id > last.ledger_id && t.base_offset == last.end_offset,
            None => true,
        };
        if let Some(tail) = m.tail.as_ref().filter(continues) {
            self.restore_tail(partition, &dir, tail).await?;
            downloaded += 1;
        }
        tracing::info!(partition = %partition, epoch, removed, downloaded, tiered_end = m.tiered_end(),
            "local data made to agree with the tiered log");
        Ok(())
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
    /// serves anything), and starts offloading it.
    pub async fn begin(
        &self,
        partition: &TopicName,
        ledger: &Arc<ManagedLedger>,
        dir: PathBuf,
        epoch: i64,
        incarnation: i64,
    ) -> Result<(), TieringError> {
        let mut applied_start = false;
        loop {
            let mut current = self.read_manifest(partition, incarnation).await?;
            // Records deleted by an earlier owner (DeleteRecords) stay deleted.
            if !applied_start && current.manifest.start > ledger.range().start {
                ledger.delete_records_before(current.manifest.start.min(ledger.range().end)).await?;
                applied_start = true;
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
                        None => continue,
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
            return Ok(());
        }
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
