//! Durable cursors (Pulsar subscriptions) travel with their partition: the
//! owner writes each one that changed to the metadata store at its
//! offloader pass (at most once a second), and a broker that opens the
//! partition restores those ahead of its own. A subscription that moves
//! loses at most the acknowledgements of its last second, which come again
//! (at least once, as in Pulsar after a broker crash); none is skipped.
//!
//! Keys: `/managed-ledgers/<tenant>/<ns>/<partition>/cursors/<name>`, the
//! name in URL-safe base64 (subscription names are free text).

use std::{collections::HashMap, sync::Arc};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use polyport_ledger::{Ack, InitialPosition, ManagedLedger};
use serde::{Deserialize, Serialize};

use super::{blocking, manifest, Tiering, TieringError};
use crate::{metadata::Expect, topics::TopicName};

/// A cursor as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StoredCursor {
    /// Every offset below it is acknowledged.
    mark_delete: u64,
    /// Acknowledged ranges above it, `[start, end)`.
    #[serde(default)]
    acked: Vec<(u64, u64)>,
}

/// Durable cursors by name.
pub(super) type Cursors = HashMap<String, StoredCursor>;

fn prefix(partition: &TopicName) -> String {
    format!("{}/cursors/", manifest::key(partition))
}

fn key(partition: &TopicName, name: &str) -> String {
    format!("{}{}", prefix(partition), URL_SAFE_NO_PAD.encode(name))
}

/// The ledger's durable cursors now (from memory: no backlog is counted,
/// which could read the disk on this async task).
fn current(ledger: &ManagedLedger) -> Cursors {
    ledger
        .cursor_states()
        .into_iter()
        .filter(|(_, c)| c.durable)
        .map(|(name, c)| {
            let acked = c.acked.iter().map(|(s, e)| (*s, *e)).collect();
            (name, StoredCursor { mark_delete: c.mark_delete, acked })
        })
        .collect()
}

impl Tiering {
    /// Writes `partition`'s durable cursors that changed since the last
    /// call, and deletes those that are gone.
    pub(super) async fn sync_cursors(&self, partition: &TopicName, ledger: &ManagedLedger) -> Result<(), TieringError> {
        let now = current(ledger);
        let Some(written) = self.partitions().get(partition).map(|p| p.cursors.clone()) else { return Ok(()) };
        if now == written {
            return Ok(());
        }
        let mut changes: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        for (name, cursor) in &now {
            if written.get(name) != Some(cursor) {
                let value = serde_json::to_vec(cursor)
                    .map_err(|e| TieringError::Manifest { key: key(partition, name), reason: e.to_string() })?;
                changes.push((key(partition, name), Some(value)));
            }
        }
        for name in written.keys().filter(|n| !now.contains_key(*n)) {
            changes.push((key(partition, name), None));
        }
        let store = Arc::clone(&self.store);
        blocking(move || {
            for (key, value) in changes {
                match value {
                    Some(value) => {
                        store.put(&key, &value, Expect::Any)?;
                    }
                    None => match store.delete(&key, Expect::Any) {
                        Ok(()) | Err(crate::metadata::MetadataError::Conflict { .. }) => {}
                        Err(e) => return Err(e.into()),
                    },
                }
            }
            Ok(())
        })
        .await?;
        if let Some(p) = self.partitions().get_mut(partition) {
            p.cursors = now;
        }
        Ok(())
    }

    /// Brings the stored cursors of `partition` into its freshly opened
    /// ledger: a cursor missing here is created at the stored position,
    /// one behind it moves up. Returns what is stored.
    pub(super) async fn restore_cursors(
        &self,
        partition: &TopicName,
        ledger: &ManagedLedger,
    ) -> Result<Cursors, TieringError> {
        let (store, prefix) = (Arc::clone(&self.store), prefix(partition));
        let stored: Vec<(String, Vec<u8>)> = blocking(move || {
            let mut out = Vec::new();
            for key in store.list(&prefix)? {
                if let Some(value) = store.get(&key)? {
                    out.push((key, value.value));
                }
            }
            Ok(out)
        })
        .await?;
        let prefix = self::prefix(partition);
        let local: std::collections::HashMap<String, polyport_ledger::CursorState> =
            ledger.cursor_states().into_iter().collect();
        let mut cursors = Cursors::new();
        for (key, value) in stored {
            let name = key
                .strip_prefix(&prefix)
                .and_then(|encoded| URL_SAFE_NO_PAD.decode(encoded).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok());
            let (Some(name), Ok(cursor)) = (name, serde_json::from_slice::<StoredCursor>(&value)) else {
                tracing::warn!(partition = %partition, key, "unreadable stored cursor ignored");
                continue;
            };
            let behind = local.get(&name).is_none_or(|local| local.mark_delete < cursor.mark_delete);
            if behind {
                ledger.open_cursor(&name, true, InitialPosition::Offset(cursor.mark_delete)).await?;
                ledger.seek_cursor(&name, cursor.mark_delete)?;
                if !cursor.acked.is_empty() {
                    ledger.acknowledge(&name, &Ack::Individual(cursor.acked.clone()))?;
                }
                tracing::info!(partition = %partition, cursor = %name, mark_delete = cursor.mark_delete,
                    "cursor restored from the metadata store");
            }
            cursors.insert(name, cursor);
        }
        Ok(cursors)
    }

    /// Deletes every stored cursor of `partition` (its topic deleted).
    pub(super) async fn delete_cursors(&self, partition: &TopicName) -> Result<(), TieringError> {
        let (store, prefix) = (Arc::clone(&self.store), prefix(partition));
        blocking(move || {
            for key in store.list(&prefix)? {
                let _ = store.delete(&key, Expect::Any);
            }
            Ok(())
        })
        .await
    }
}
