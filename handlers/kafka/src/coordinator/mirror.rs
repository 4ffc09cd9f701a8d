//! The bridge to Pulsar's view: every committed offset is mirrored to a
//! durable cursor named after the group on the partition's ledger, so
//! retention keeps what a Kafka group has not consumed and cursor listings
//! (backlog, Pulsar-side tools) show Kafka groups.
//!
//! One task applies the mirror operations in the order the coordinator
//! partitions send them (a later commit never loses to an earlier one), and
//! coalesces a burst: only the last offset per (ledger, group) is written.
//! Failures are logged, not returned: the system topic is the source of
//! truth, and the next commit writes the cursor again.

use std::collections::HashMap;

use polyport_handler_api::{
    storage::{InitialPosition, OpenOptions},
    ErrorKind, Host,
};
use tokio::sync::mpsc;

/// One cursor change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorOp {
    /// Move (or create) the group's cursor on `ledger` to `offset`.
    Seek {
        /// Partition ledger.
        ledger: String,
        /// Group (cursor name).
        group: String,
        /// Committed offset.
        offset: u64,
    },
    /// Delete the group's cursor on `ledger`.
    Delete {
        /// Partition ledger.
        ledger: String,
        /// Group (cursor name).
        group: String,
    },
}

impl MirrorOp {
    fn key(&self) -> (&str, &str) {
        match self {
            MirrorOp::Seek { ledger, group, .. } | MirrorOp::Delete { ledger, group } => (ledger, group),
        }
    }
}

/// Operations and what to run once they are applied.
pub struct MirrorJob {
    /// The cursor changes.
    pub ops: Vec<MirrorOp>,
    /// Runs after the changes (answers the commit).
    pub done: Box<dyn FnOnce() + Send>,
}

impl std::fmt::Debug for MirrorJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorJob").field("ops", &self.ops).finish_non_exhaustive()
    }
}

/// Applies jobs until every sender is gone.
pub async fn run(host: Host, mut jobs: mpsc::UnboundedReceiver<MirrorJob>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while let Ok(job) = jobs.try_recv() {
            batch.push(job);
        }
        // Last operation per cursor wins; first-seen order is kept.
        let mut order: Vec<MirrorOp> = Vec::new();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        let mut done = Vec::with_capacity(batch.len());
        for job in batch {
            for op in job.ops {
                let key = (op.key().0.to_owned(), op.key().1.to_owned());
                match index.get(&key) {
                    Some(&i) => order[i] = op,
                    None => {
                        index.insert(key, order.len());
                        order.push(op);
                    }
                }
            }
            done.push(job.done);
        }
        for op in order {
            apply(&host, op).await;
        }
        for d in done {
            d();
        }
    }
}

async fn apply(host: &Host, op: MirrorOp) {
    let ledger = match &op {
        MirrorOp::Seek { ledger, .. } | MirrorOp::Delete { ledger, .. } => ledger,
    };
    // In a cluster, a cursor lives with its partition's owner: a partition
    // another broker serves is not mirrored here (opening it would claim it).
    if let Ok(lookup) = host.lookup(ledger).await {
        if !lookup.local {
            tracing::debug!(?op, "group cursor not mirrored: the partition is served by another broker");
            return;
        }
    }
    let result = match &op {
        MirrorOp::Seek { ledger, group, offset } => match host.open_partition(ledger, OpenOptions::default()).await {
            Ok(partition) => match partition.cursor_open(group, true, InitialPosition::Offset(*offset)).await {
                Ok(_) => partition.cursor_seek(group, *offset).await.map(|_| ()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        MirrorOp::Delete { ledger, group } => {
            let deleted = match host.open_partition(ledger, OpenOptions::default()).await {
                Ok(partition) => partition.cursor_delete(group).await,
                Err(e) => Err(e),
            };
            match deleted {
                Err(e) if e.kind() == ErrorKind::NOT_FOUND => Ok(()),
                other => other,
            }
        }
    };
    if let Err(e) = result {
        // A deleted topic has no cursor to keep; anything else is worth a warning.
        if e.kind() == ErrorKind::NOT_FOUND {
            tracing::debug!(?op, error = %e, "group cursor not mirrored: no such partition");
        } else {
            tracing::warn!(?op, error = %e, "group cursor not mirrored");
        }
    }
}
