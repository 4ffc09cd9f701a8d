//! The group coordinator: consumer groups, committed offsets and their
//! persistence.
//!
//! Groups are spread over `offsetsTopicNumPartitions` coordinator partitions
//! by Kafka's hash of the group id (Java's `String.hashCode`, as Kafka and
//! KoP pick `__consumer_offsets` partitions). Each partition is one task
//! ([`partition`]) owning its groups ([`group`], a pure state machine) and
//! one partition of the system topic
//! `persistent://<kafkaMetadataTenant>/<kafkaMetadataNamespace>/__consumer_offsets`
//! ([`store`] is its record layout). Committed offsets are mirrored to
//! durable cursors named after the group ([`mirror`]).
//!
//! API modules talk to it through [`Coordinator`]'s async methods, which send
//! a message to the owning task and wait for its answer.

pub mod group;
pub mod markers;
pub mod mirror;
pub mod partition;
pub mod store;

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use polyport_handler_api::{storage::TopicPolicies, Config, ErrorKind, HandlerError, Host};
use tokio::sync::{mpsc, oneshot};

pub use group::{Committed, Description, GroupConfig, JoinOutcome, JoinRequest, OffsetKey, SyncOutcome, SyncRequest};
pub use partition::{CommitEntry, Committer, Listing, TxnAdd, TxnInit, TxnLimits};

use self::partition::{Command, Partition};
use crate::errors;

/// The system topic's local name, as Kafka's.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Commands queued per coordinator partition before senders wait.
const QUEUE: usize = 4096;

/// The coordinator's settings from broker.conf.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Group protocol settings.
    pub group: GroupConfig,
    /// `kafkaMetadataTenant/kafkaMetadataNamespace`.
    pub metadata_namespace: String,
    /// `offsetsTopicNumPartitions`.
    pub partitions: u32,
    /// `offsetsRetentionCheckIntervalMs`.
    pub retention_check: Duration,
    /// Transactions: `kafkaTransactionCoordinatorEnabled`.
    pub transactions: bool,
    /// `transactionMaxTimeoutMs` and `transactionAbortTimedOutTransactionCleanupIntervalMs`.
    pub txn_limits: TxnLimits,
}

impl CoordinatorConfig {
    /// The keys this module reads.
    pub const KEYS: &'static [&'static str] = &[
        "kafkaMetadataTenant",
        "kafkaMetadataNamespace",
        "offsetsTopicNumPartitions",
        "offsetsRetentionMinutes",
        "offsetsRetentionCheckIntervalMs",
        "offsetMetadataMaxSize",
        "groupMinSessionTimeoutMs",
        "groupMaxSessionTimeoutMs",
        "groupInitialRebalanceDelayMs",
        "kafkaTransactionCoordinatorEnabled",
        "transactionMaxTimeoutMs",
        "transactionAbortTimedOutTransactionCleanupIntervalMs",
    ];

    /// Reads and checks the keys.
    pub fn from_config(config: &Config) -> Result<Self, HandlerError> {
        let defaults = GroupConfig::default();
        let tenant = config.get("kafkaMetadataTenant").unwrap_or("public");
        let namespace = config.get("kafkaMetadataNamespace").unwrap_or("__kafka");
        for (key, value) in [("kafkaMetadataTenant", tenant), ("kafkaMetadataNamespace", namespace)] {
            if !crate::topics::valid_name_segment(value) {
                return Err(HandlerError::config(
                    key,
                    value,
                    "a tenant or namespace name (letters, digits, - _ . = :)",
                ));
            }
        }
        let positive = |key: &str, default: i64, what: &str| -> Result<i64, HandlerError> {
            let v: i64 = config.parse_or(key, default, what)?;
            if v <= 0 {
                return Err(HandlerError::config(key, &v.to_string(), what));
            }
            Ok(v)
        };
        let partitions = positive("offsetsTopicNumPartitions", 8, "a number of partitions, 1 to 1024")?;
        if partitions > 1024 {
            return Err(HandlerError::config(
                "offsetsTopicNumPartitions",
                &partitions.to_string(),
                "a number of partitions, 1 to 1024",
            ));
        }
        let retention_minutes: i64 = config.parse_or("offsetsRetentionMinutes", 10080, "minutes (-1: forever)")?;
        if retention_minutes < -1 || retention_minutes == 0 {
            return Err(HandlerError::config(
                "offsetsRetentionMinutes",
                &retention_minutes.to_string(),
                "minutes, at least 1 (-1: forever)",
            ));
        }
        let check = positive("offsetsRetentionCheckIntervalMs", 600_000, "milliseconds, at least 1")?;
        let min_session = positive("groupMinSessionTimeoutMs", defaults.min_session_timeout_ms.into(), "milliseconds")?;
        let max_session = positive("groupMaxSessionTimeoutMs", defaults.max_session_timeout_ms.into(), "milliseconds")?;
        if max_session < min_session || max_session > i64::from(i32::MAX) {
            return Err(HandlerError::config(
                "groupMaxSessionTimeoutMs",
                &max_session.to_string(),
                &format!("milliseconds, at least groupMinSessionTimeoutMs ({min_session})"),
            ));
        }
        let delay: i64 = config.parse_or(
            "groupInitialRebalanceDelayMs",
            defaults.initial_rebalance_delay_ms as i64,
            "milliseconds (0: none)",
        )?;
        if delay < 0 {
            return Err(HandlerError::config(
                "groupInitialRebalanceDelayMs",
                &delay.to_string(),
                "milliseconds (0: none)",
            ));
        }
        let max_metadata = positive("offsetMetadataMaxSize", defaults.max_metadata_bytes as i64, "a number of bytes")?;
        let transactions = match config.get("kafkaTransactionCoordinatorEnabled").unwrap_or("true") {
            "true" => true,
            "false" => false,
            other => return Err(HandlerError::config("kafkaTransactionCoordinatorEnabled", other, "true or false")),
        };
        let max_txn_timeout = positive("transactionMaxTimeoutMs", 900_000, "milliseconds, at least 1")?;
        if max_txn_timeout > i64::from(i32::MAX) {
            return Err(HandlerError::config(
                "transactionMaxTimeoutMs",
                &max_txn_timeout.to_string(),
                "milliseconds, at most 2147483647",
            ));
        }
        let abort_check =
            positive("transactionAbortTimedOutTransactionCleanupIntervalMs", 10_000, "milliseconds, at least 1")?;
        Ok(Self {
            group: GroupConfig {
                min_session_timeout_ms: min_session as i32,
                max_session_timeout_ms: max_session as i32,
                initial_rebalance_delay_ms: delay as u64,
                offsets_retention_ms: if retention_minutes < 0 { -1 } else { retention_minutes * 60_000 },
                max_metadata_bytes: max_metadata as usize,
            },
            metadata_namespace: format!("{tenant}/{namespace}"),
            partitions: partitions as u32,
            retention_check: Duration::from_millis(check as u64),
            transactions,
            txn_limits: TxnLimits {
                max_timeout_ms: max_txn_timeout as i32,
                abort_check: Duration::from_millis(abort_check as u64),
            },
        })
    }
}

/// The coordinator of every group (this broker coordinates them all).
#[derive(Debug)]
pub struct Coordinator {
    config: CoordinatorConfig,
    partitions: OnceLock<Vec<mpsc::Sender<Command>>>,
}

/// Java's `String.hashCode`, which Kafka uses to place a group.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The coordinator partition (of `partitions`) of a group or transactional id.
pub fn partition_index(key: &str, partitions: usize) -> usize {
    (java_hash(key) & 0x7fff_ffff) as usize % partitions.max(1)
}

impl Coordinator {
    /// A coordinator that serves once [`Self::start`] ran.
    pub fn new(config: CoordinatorConfig) -> Self {
        Self { config, partitions: OnceLock::new() }
    }

    /// The settings.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// The system topic's name.
    pub fn offsets_topic(&self) -> String {
        format!("persistent://{}/{OFFSETS_TOPIC}", self.config.metadata_namespace)
    }

    /// Starts the partition tasks; each replays its part of the system topic
    /// before serving (requests wait meanwhile).
    pub fn start(
        &self,
        host: &Host,
        kafka_namespace: &str,
        txn_index: Arc<crate::txn_index::TxnIndex>,
        sequences: Arc<crate::idempotence::Sequences>,
    ) {
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..self.config.partitions {
            let (tx, rx) = mpsc::channel(QUEUE);
            senders.push(tx);
            receivers.push(rx);
        }
        let markers = Arc::new(markers::Markers {
            mapper: crate::topics::TopicMapper::new(kafka_namespace.to_owned()),
            txn_index,
            sequences,
            peers: senders.iter().map(mpsc::Sender::downgrade).collect(),
        });
        if self.partitions.set(senders).is_err() {
            return;
        }
        let (mirror_tx, mirror_rx) = mpsc::unbounded_channel();
        host.spawn("kafka-group-mirror", mirror::run(host.clone(), mirror_rx));
        let (config, topic, host2, ns) =
            (self.config.clone(), self.offsets_topic(), host.clone(), kafka_namespace.to_owned());
        host.spawn("kafka-coordinator", async move {
            if let Err(e) = prepare_topic(&host2, &config, &topic).await {
                // Dropping the receivers makes every call answer COORDINATOR_NOT_AVAILABLE.
                tracing::error!(topic = %topic, error = %e, "group coordinator cannot open its system topic; groups are unavailable");
                return;
            }
            let group = Arc::new(config.group.clone());
            for (i, rx) in receivers.into_iter().enumerate() {
                let task = Partition::new(
                    i,
                    topic.clone(),
                    host2.clone(),
                    Arc::clone(&group),
                    config.retention_check,
                    mirror_tx.clone(),
                    ns.clone(),
                    config.txn_limits,
                    Arc::clone(&markers),
                );
                host2.spawn("kafka-coordinator-partition", task.run(rx));
            }
        });
    }

    /// The offsets-topic partition that holds `group` (Kafka's choice).
    pub fn partition_of(&self, group: &str) -> usize {
        partition_index(group, self.config.partitions as usize)
    }

    fn sender(&self, group: &str) -> Option<&mpsc::Sender<Command>> {
        self.partitions.get()?.get(self.partition_of(group))
    }

    /// Sends a command to the group's partition and waits for the answer;
    /// COORDINATOR_NOT_AVAILABLE when the coordinator is not running.
    async fn call<T>(&self, group: &str, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, i16> {
        let sender = self.sender(group).ok_or(errors::COORDINATOR_NOT_AVAILABLE)?;
        let (tx, rx) = oneshot::channel();
        sender.send(make(tx)).await.map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?;
        rx.await.map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)
    }

    /// JoinGroup.
    pub async fn join(&self, group: &str, request: JoinRequest) -> JoinOutcome {
        let member_id = request.member_id.clone();
        self.call(group, |tx| Command::Join(group.to_owned(), request, tx))
            .await
            .unwrap_or_else(|code| JoinOutcome::error(code, &member_id))
    }

    /// SyncGroup.
    pub async fn sync(&self, group: &str, request: SyncRequest) -> SyncOutcome {
        self.call(group, |tx| Command::Sync(group.to_owned(), request, tx)).await.unwrap_or_else(SyncOutcome::error)
    }

    /// Heartbeat: an error code.
    pub async fn heartbeat(&self, group: &str, who: Committer) -> i16 {
        self.call(group, |tx| Command::Heartbeat(group.to_owned(), who, tx)).await.unwrap_or_else(|c| c)
    }

    /// LeaveGroup: a code per member, or one for the request.
    pub async fn leave(&self, group: &str, members: Vec<(String, Option<String>)>) -> Result<Vec<i16>, i16> {
        self.call(group, |tx| Command::Leave(group.to_owned(), members, tx)).await?
    }

    /// OffsetCommit: a code per entry.
    pub async fn commit(&self, group: &str, who: Committer, entries: Vec<CommitEntry>) -> Vec<i16> {
        let n = entries.len();
        self.call(group, |tx| Command::Commit(group.to_owned(), who, entries, tx)).await.unwrap_or_else(|c| vec![c; n])
    }

    /// OffsetFetch: the given keys (or all the group's), with their commits.
    pub async fn fetch(
        &self,
        group: &str,
        keys: Option<Vec<OffsetKey>>,
    ) -> Result<Vec<(OffsetKey, Option<Committed>)>, i16> {
        self.call(group, |tx| Command::Fetch(group.to_owned(), keys, tx)).await
    }

    /// DescribeGroups: `None` for an unknown group.
    pub async fn describe(&self, group: &str) -> Result<Option<Description>, i16> {
        self.call(group, |tx| Command::Describe(group.to_owned(), tx)).await
    }

    /// ListGroups: every group of every partition.
    pub async fn list(&self) -> Result<Vec<Listing>, i16> {
        let partitions = self.partitions.get().ok_or(errors::COORDINATOR_NOT_AVAILABLE)?;
        let mut all = Vec::new();
        for sender in partitions {
            let (tx, rx) = oneshot::channel();
            sender.send(Command::List(tx)).await.map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?;
            all.extend(rx.await.map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?);
        }
        all.sort_by(|a, b| a.group.cmp(&b.group));
        Ok(all)
    }

    /// DeleteGroups: an error code.
    pub async fn delete(&self, group: &str) -> i16 {
        self.call(group, |tx| Command::Delete(group.to_owned(), tx)).await.unwrap_or_else(|c| c)
    }

    /// InitProducerId with a transactional id: the producer id and epoch.
    pub async fn txn_init(&self, init: TxnInit) -> Result<(i64, i16), i16> {
        let id = init.id.clone();
        self.call(&id, |tx| Command::TxnInit(init, tx)).await?
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: an error code.
    pub async fn txn_add(&self, add: TxnAdd) -> i16 {
        let id = add.id.clone();
        self.call(&id, |tx| Command::TxnAdd(add, tx)).await.unwrap_or_else(|c| c)
    }

    /// EndTxn: an error code.
    pub async fn txn_end(&self, id: &str, producer_id: i64, epoch: i16, commit: bool) -> i16 {
        self.call(id, |reply| Command::TxnEnd { id: id.to_owned(), producer_id, epoch, commit, reply })
            .await
            .unwrap_or_else(|c| c)
    }

    /// TxnOffsetCommit: a code per entry.
    pub async fn txn_commit(
        &self,
        group: &str,
        producer_id: i64,
        who: Committer,
        entries: Vec<CommitEntry>,
    ) -> Vec<i16> {
        let n = entries.len();
        self.call(group, |reply| Command::TxnOffsetCommit { group: group.to_owned(), producer_id, who, entries, reply })
            .await
            .unwrap_or_else(|c| vec![c; n])
    }

    /// The keys of `group` with a transactional commit pending.
    pub async fn pending_offsets(&self, group: &str) -> Result<Vec<OffsetKey>, i16> {
        self.call(group, |tx| Command::PendingOffsets(group.to_owned(), tx)).await
    }

    /// DescribeTransactions: each id's metadata (`None`: unknown).
    pub async fn txn_describe(&self, id: &str) -> Result<Option<crate::transactions::TxnMetadata>, i16> {
        let found = self.call(id, |tx| Command::TxnDescribe(vec![id.to_owned()], tx)).await?;
        Ok(found.into_iter().next().and_then(|(_, m)| m))
    }

    /// ListTransactions: every transactional id of every partition.
    pub async fn txn_list(&self) -> Result<Vec<(String, crate::transactions::TxnMetadata)>, i16> {
        let partitions = self.partitions.get().ok_or(errors::COORDINATOR_NOT_AVAILABLE)?;
        let mut all = Vec::new();
        for sender in partitions {
            let (tx, rx) = oneshot::channel();
            sender.send(Command::TxnList(tx)).await.map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?;
            all.extend(rx.await.map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?);
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// OffsetDelete: a code per key, or one for the group.
    pub async fn offset_delete(&self, group: &str, keys: Vec<OffsetKey>) -> Result<Vec<i16>, i16> {
        self.call(group, |tx| Command::OffsetDelete(group.to_owned(), keys, tx)).await?
    }
}

/// Creates the namespace and the system topic (keeping an existing topic's
/// partition count), with retention off: the coordinator truncates it itself.
async fn prepare_topic(host: &Host, config: &CoordinatorConfig, topic: &str) -> Result<(), HandlerError> {
    host.create_namespace(&config.metadata_namespace).await?;
    match host.create_topic(topic, config.partitions).await {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::ALREADY_EXISTS => {}
        Err(e) => return Err(e),
    }
    let existing = host.partitioned_metadata(topic, false).await?;
    if existing != config.partitions {
        // Placing groups by another count would lose every group's offsets.
        return Err(HandlerError::config(
            "offsetsTopicNumPartitions",
            &config.partitions.to_string(),
            &format!("{existing}, the partition count {topic} was created with"),
        ));
    }
    let forever = TopicPolicies { retention_ms: -1, retention_bytes: -1, ..TopicPolicies::default() };
    host.set_topic_policies(topic, forever).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_placed_by_javas_string_hash() {
        // Values of Java's "...".hashCode().
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("hello"), 99_162_322);
        assert_eq!(
            java_hash("consumer-group-with-a-long-name"),
            "consumer-group-with-a-long-name"
                .encode_utf16()
                .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
        );
    }
}
