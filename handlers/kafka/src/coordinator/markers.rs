//! Ending a transaction once its PrepareCommit or PrepareAbort is durable
//! in the state topic: a marker (control batch, [`crate::records::control_batch`])
//! is appended to every partition of the transaction, each group's pending
//! transactional offsets are committed or dropped by the group's coordinator
//! partition, then the transactional id's own partition is told, and writes
//! CompleteCommit or CompleteAbort.
//!
//! Kafka's coordinator sends WriteTxnMarkers to each partition's leader;
//! here the partitions are this broker's ledgers, appended to directly. A
//! failed write is retried (with a growing pause, up to
//! 5 s) until it succeeds: a transaction must end the same way
//! everywhere. A partition whose topic was deleted is skipped. A job that a
//! restart or a move of the coordinator partition cut short is started
//! again from the PrepareCommit/PrepareAbort replayed; a marker written
//! twice is harmless (readers and [`crate::txn_index`] ignore a marker for a
//! producer with no open transaction).
//!
//! In a cluster, a partition owned by another broker refuses the append
//! (NOT_OWNER) and the job retries until ownership changes: markers to
//! another broker's partitions (Kafka's WriteTxnMarkers) are a documented
//! gap (docs/kafka.md).

use std::{sync::Arc, time::Duration};

use polyport_handler_api::{storage::NewEntry, ErrorKind, HandlerError, Host};
use tokio::sync::{mpsc, oneshot};

use super::partition::Command;
use crate::{records, topics::TopicMapper, txn_index::TxnIndex};

/// The longest pause between two attempts of a failed marker write.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// A transaction to end.
#[derive(Debug, Clone)]
pub struct MarkerJob {
    /// The transactional id.
    pub id: String,
    /// The producer and the epoch the markers carry.
    pub producer_id: i64,
    /// The epoch.
    pub epoch: i16,
    /// Committed or aborted.
    pub commit: bool,
    /// Kafka topic and partition of each partition of the transaction.
    pub partitions: Vec<(String, i32)>,
    /// The groups whose offsets the transaction commits.
    pub groups: Vec<String>,
}

/// What the marker jobs need.
#[derive(Debug)]
pub struct Markers {
    /// Kafka names to ledgers.
    pub mapper: TopicMapper,
    /// Readers' view of each partition's transactions.
    pub txn_index: Arc<TxnIndex>,
    /// Producers' epochs per partition: a marker's newer epoch fences the
    /// older producer there.
    pub sequences: Arc<crate::idempotence::Sequences>,
    /// Every coordinator partition's channel, weak so that the tasks still
    /// end when the coordinator goes.
    pub peers: Vec<mpsc::WeakSender<Command>>,
}

impl Markers {
    /// Runs `job` to its end (or until the coordinator is gone).
    pub async fn run(self: Arc<Self>, host: Host, job: MarkerJob, own: usize) {
        let span = tracing::info_span!("txn_markers", id = %job.id, producer_id = job.producer_id, commit = job.commit);
        let _enter = span.enter();
        for (topic, partition) in &job.partitions {
            let mut pause = Duration::from_millis(50);
            loop {
                match self.write(&host, &job, topic, *partition).await {
                    Ok(()) => break,
                    Err(e) if matches!(e.kind(), ErrorKind::NOT_FOUND) => {
                        tracing::info!(topic = %topic, partition, "transaction marker skipped: the topic is gone");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(topic = %topic, partition, error = %e, "transaction marker not written; retrying");
                        host.sleep(pause).await;
                        pause = (pause * 2).min(MAX_PAUSE);
                    }
                }
            }
        }
        for group in &job.groups {
            let mut pause = Duration::from_millis(50);
            loop {
                let Some(sender) = self.peer(super::partition_index(group, self.peers.len())) else { return };
                let (tx, rx) = oneshot::channel();
                let command = Command::TxnOffsetEnd {
                    group: group.clone(),
                    producer_id: job.producer_id,
                    commit: job.commit,
                    reply: tx,
                };
                let code = match sender.send(command).await {
                    Ok(()) => rx.await.unwrap_or(crate::errors::COORDINATOR_NOT_AVAILABLE),
                    Err(_) => return,
                };
                if code == crate::errors::NONE {
                    break;
                }
                tracing::warn!(group = %group, code, "transactional offsets not completed; retrying");
                host.sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
        if let Some(sender) = self.peer(own) {
            let _ = sender
                .send(Command::TxnComplete { id: job.id.clone(), producer_id: job.producer_id, epoch: job.epoch })
                .await;
        }
    }

    fn peer(&self, index: usize) -> Option<mpsc::Sender<Command>> {
        self.peers.get(index)?.upgrade()
    }

    /// Appends the marker to one partition and records it for readers.
    async fn write(&self, host: &Host, job: &MarkerJob, topic: &str, partition: i32) -> Result<(), HandlerError> {
        let resolved = self.mapper.resolve(Some(host), topic, false).await;
        let (pulsar, ledger) = match (resolved.topic(), resolved.ledger(partition)) {
            (Ok((pulsar, _)), Ok(ledger)) => (pulsar.to_owned(), ledger),
            (Err(code), _) | (_, Err(code)) => {
                let kind = if code == crate::errors::UNKNOWN_TOPIC_OR_PARTITION {
                    ErrorKind::NOT_FOUND
                } else {
                    ErrorKind::STATE
                };
                return Err(HandlerError::new(kind, format!("{topic}-{partition}: Kafka error {code}")));
            }
        };
        let log = self.mapper.partition(host, &ledger, false).await?;
        self.txn_index.load_once(host, &pulsar, &ledger, &log, Some(resolved.settings().transactional)).await?;
        let now = host.now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let payload = records::control_batch(job.producer_id, job.epoch, job.commit, 0, now);
        let entry = NewEntry { payload, count: 1, format: records::FORMAT_KAFKA, flags: 0, max_timestamp_ms: now };
        // The epoch first: a batch of the fenced producer checked from now
        // on is refused, so none lands after the marker (and into the
        // successor's transaction).
        self.sequences.fence(&ledger, job.producer_id, job.epoch);
        let result = log.append(vec![entry], true).await?;
        let offset = result.appended.first().map_or(result.range.end.saturating_sub(1), |a| a.base_offset);
        self.txn_index.marker(&ledger, job.producer_id, job.commit, offset);
        Ok(())
    }
}
