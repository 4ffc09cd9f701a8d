//! One coordinator partition: the task that owns every group hashed to it and
//! the partition of the system topic where their offsets and metadata live.
//!
//! One owner: groups are reached only through this
//! task's channel, and no lock is held across I/O. Appends are pipelined: a
//! burst of commits becomes one entry, and the task keeps serving heartbeats
//! and joins while the append is in flight; a commit is answered once its
//! entry is durable and its cursor mirror is written ([`super::mirror`]).
//!
//! Start-up replays the partition. The log stays short: when the records
//! written since the last snapshot outnumber the live ones (and at least
//! [`SNAPSHOT_MIN_RECORDS`]), the task appends the live state as a snapshot
//! and deletes everything before it (DeleteRecords on its own partition), so
//! start-up reads a bounded log however many commits were made.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use futures_util::{stream::FuturesOrdered, Future, StreamExt};
use polyport_handler_api::{
    storage::{NewEntry, OpenOptions, ReadRequest},
    ErrorKind, HandlerError, Host,
};
use tokio::sync::{mpsc, oneshot};

use super::{
    group::{
        Committed, Description, Group, GroupConfig, JoinOutcome, JoinRequest, OffsetKey, SyncOutcome, SyncRequest,
    },
    markers::Markers,
    mirror::{MirrorJob, MirrorOp},
    store::{self, Record, FORMAT_GROUPS},
};
use crate::{errors, topics::TopicMapper, transactions::TxnMetadata};

mod txns;

pub use txns::{TxnAdd, TxnInit, TxnLimits};

/// A snapshot is not worth writing for fewer records than this.
pub const SNAPSHOT_MIN_RECORDS: u64 = 10_000;
/// The largest entry a snapshot writes (well under any `maxMessageSize`).
const SNAPSHOT_ENTRY_BYTES: usize = 512 * 1024;

/// A group as ListGroups shows it.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Group id.
    pub group: String,
    /// Protocol type.
    pub protocol_type: String,
    /// State name.
    pub state: &'static str,
}

/// One offset of a commit.
#[derive(Debug, Clone)]
pub struct CommitEntry {
    /// Topic and partition.
    pub key: OffsetKey,
    /// What to store.
    pub value: Committed,
}

/// Who is committing.
#[derive(Debug, Clone)]
pub struct Committer {
    /// Member id ("" for standalone consumers).
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Generation (-1 for standalone consumers).
    pub generation: i32,
}

/// A request to a coordinator partition.
#[derive(Debug)]
pub enum Command {
    /// JoinGroup.
    Join(String, JoinRequest, oneshot::Sender<JoinOutcome>),
    /// SyncGroup.
    Sync(String, SyncRequest, oneshot::Sender<SyncOutcome>),
    /// Heartbeat: member, instance, generation.
    Heartbeat(String, Committer, oneshot::Sender<i16>),
    /// LeaveGroup: (member id, instance id) per member.
    Leave(String, Vec<(String, Option<String>)>, oneshot::Sender<Result<Vec<i16>, i16>>),
    /// OffsetCommit: an error code per entry.
    Commit(String, Committer, Vec<CommitEntry>, oneshot::Sender<Vec<i16>>),
    /// OffsetFetch: the given keys, or every key of the group.
    Fetch(String, Option<Vec<OffsetKey>>, oneshot::Sender<Vec<(OffsetKey, Option<Committed>)>>),
    /// DescribeGroups.
    Describe(String, oneshot::Sender<Option<Description>>),
    /// ListGroups.
    List(oneshot::Sender<Vec<Listing>>),
    /// DeleteGroups.
    Delete(String, oneshot::Sender<i16>),
    /// OffsetDelete: an error code per key, or one for the group.
    OffsetDelete(String, Vec<OffsetKey>, oneshot::Sender<Result<Vec<i16>, i16>>),
    /// InitProducerId with a transactional id: the producer id and epoch.
    TxnInit(TxnInit, oneshot::Sender<Result<(i64, i16), i16>>),
    /// AddPartitionsToTxn or AddOffsetsToTxn: one error code for all.
    TxnAdd(TxnAdd, oneshot::Sender<i16>),
    /// EndTxn.
    TxnEnd {
        /// The transactional id.
        id: String,
        /// Its producer.
        producer_id: i64,
        /// The producer's epoch.
        epoch: i16,
        /// Commit or abort.
        commit: bool,
        /// The error code.
        reply: oneshot::Sender<i16>,
    },
    /// Every marker of the transaction was written ([`super::markers`]).
    TxnComplete {
        /// The transactional id.
        id: String,
        /// Its producer.
        producer_id: i64,
        /// The epoch of the markers.
        epoch: i16,
    },
    /// TxnOffsetCommit: an error code per entry.
    TxnOffsetCommit {
        /// The group.
        group: String,
        /// The transaction's producer.
        producer_id: i64,
        /// Who commits (generation -1: not checked).
        who: Committer,
        /// The offsets.
        entries: Vec<CommitEntry>,
        /// A code per entry.
        reply: oneshot::Sender<Vec<i16>>,
    },
    /// A transaction ended: the group's pending offsets of `producer_id`
    /// are committed or dropped ([`super::markers`]).
    TxnOffsetEnd {
        /// The group.
        group: String,
        /// The transaction's producer.
        producer_id: i64,
        /// Committed or aborted.
        commit: bool,
        /// The error code.
        reply: oneshot::Sender<i16>,
    },
    /// The keys of a group with a transactional commit pending.
    PendingOffsets(String, oneshot::Sender<Vec<OffsetKey>>),
    /// DescribeTransactions: each id's metadata.
    TxnDescribe(Vec<String>, oneshot::Sender<Vec<(String, Option<TxnMetadata>)>>),
    /// ListTransactions: every id of this partition.
    TxnList(oneshot::Sender<Vec<(String, TxnMetadata)>>),
}

/// What to do once an append is durable.
enum Done {
    Commit { group: String, entries: Vec<CommitEntry>, codes: Vec<i16>, reply: oneshot::Sender<Vec<i16>> },
    Delete { group: String, reply: oneshot::Sender<i16> },
    OffsetDelete { group: String, keys: Vec<OffsetKey>, codes: Vec<i16>, reply: oneshot::Sender<Result<Vec<i16>, i16>> },
    Expire { group: String, keys: Vec<OffsetKey> },
    Txn(txns::TxnDone),
}

type Appended = (Result<(), HandlerError>, Vec<Done>, usize);
type Append = Pin<Box<dyn Future<Output = Appended> + Send>>;

/// Why the task woke up.
enum Wake {
    Command(Option<Command>),
    Appended(Appended),
    Timer,
}

/// The task's state.
pub struct Partition {
    index: usize,
    /// The offsets topic.
    topic: String,
    ledger: String,
    host: Host,
    /// The ledger's handle, opened when the task starts.
    log: Option<polyport_handler_api::Partition>,
    config: Arc<GroupConfig>,
    retention_check: Duration,
    groups: HashMap<String, Group>,
    /// Earliest deadline first; stale entries are skipped.
    timers: BinaryHeap<Reverse<(u64, String)>>,
    scheduled: HashMap<String, u64>,
    /// Records waiting for the next append, with what to do after it.
    batch: Vec<Record>,
    batch_done: Vec<Done>,
    inflight: FuturesOrdered<Append>,
    records_since_snapshot: u64,
    mirror: mpsc::UnboundedSender<MirrorJob>,
    /// Kafka names (in subscriptions) to Pulsar topics (in offset keys).
    mapper: TopicMapper,
    /// Ownership was lost (an append was refused NOT_OWNER, or a check said so).
    lost: bool,
    /// Transactional ids hashed here, with their metadata.
    txns: HashMap<String, TxnMetadata>,
    /// Offsets committed in transactions not ended yet: (group, producer id) → offsets.
    pending_offsets: HashMap<(String, i64), HashMap<OffsetKey, Committed>>,
    /// Transaction limits.
    txn_limits: TxnLimits,
    /// Who writes transaction markers.
    markers: Arc<Markers>,
}

/// How often a coordinator partition looks at who owns it.
const OWNERSHIP_CHECK: Duration = Duration::from_secs(1);

impl Partition {
    /// A partition task over `ledger` (a partition of the system topic).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        topic: String,
        host: Host,
        config: Arc<GroupConfig>,
        retention_check: Duration,
        mirror: mpsc::UnboundedSender<MirrorJob>,
        kafka_namespace: String,
        txn_limits: TxnLimits,
        markers: Arc<Markers>,
    ) -> Self {
        Self {
            index,
            ledger: format!("{topic}-partition-{index}"),
            topic,
            host,
            log: None,
            config,
            retention_check,
            groups: HashMap::new(),
            timers: BinaryHeap::new(),
            scheduled: HashMap::new(),
            batch: Vec::new(),
            batch_done: Vec::new(),
            inflight: FuturesOrdered::new(),
            records_since_snapshot: 0,
            mirror,
            mapper: TopicMapper::new(kafka_namespace),
            lost: false,
            txns: HashMap::new(),
            pending_offsets: HashMap::new(),
            txn_limits,
            markers,
        }
    }

    fn now(&self) -> (u64, i64) {
        let wall = self.host.now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        (self.host.monotonic().as_millis() as u64, wall)
    }

    /// Serves `commands` until every sender is gone: while this broker owns
    /// the partition (always, standalone), with its groups replayed from
    /// the log; while another broker does, by dropping each command, which
    /// its caller answers COORDINATOR_NOT_AVAILABLE so the client finds the
    /// coordinator again. Ownership is looked at every second: a partition
    /// gained is loaded, one lost is unloaded.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            if !self.wait_until_owned(&mut commands).await {
                return;
            }
            match self.load().await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NOT_OWNER => {
                    self.unload().await;
                    continue;
                }
                Err(e) => {
                    // Serving without the stored state would hand out wrong offsets.
                    // Dropping `commands` makes every call answer COORDINATOR_NOT_AVAILABLE.
                    tracing::error!(partition = %self.ledger, error = %e, "coordinator partition cannot load its groups; its groups answer COORDINATOR_NOT_AVAILABLE");
                    return;
                }
            }
            if !self.serve(&mut commands).await {
                return;
            }
            tracing::info!(partition = %self.ledger, "coordinator partition moved to another broker: unloaded");
            self.unload().await;
        }
    }

    /// Whether this broker owns the partition now (placing it, if unowned:
    /// [`Host::owners`]). A host without the cluster call is a standalone
    /// broker, which owns everything.
    fn owned(&self) -> impl Future<Output = bool> + Send + 'static {
        // Owned values only: the task's state is not Sync.
        let (host, topic, index) = (self.host.clone(), self.topic.clone(), self.index);
        async move {
            // Standalone (node 0), this broker owns everything.
            if host.node_id() == 0 {
                return true;
            }
            match host.owners(&topic, false).await {
                Ok(owners) => owners.iter().any(|o| o.partition as usize == index && o.local),
                Err(e) if e.kind() == ErrorKind::UNSUPPORTED => true,
                Err(e) => {
                    tracing::debug!(topic = %topic, partition = index, error = %e, "coordinator ownership unknown");
                    false
                }
            }
        }
    }

    /// Waits until this broker owns the partition; false once `commands` is closed.
    async fn wait_until_owned(&mut self, commands: &mut mpsc::Receiver<Command>) -> bool {
        loop {
            if self.owned().await {
                return true;
            }
            let tick = self.host.sleep(OWNERSHIP_CHECK);
            tokio::select! {
                command = commands.recv() => match command {
                    // Dropped unanswered: COORDINATOR_NOT_AVAILABLE.
                    Some(_) => {}
                    None => return false,
                },
                _ = tick => {}
            }
        }
    }

    /// Forgets the groups (ownership lost), once appends in flight are answered.
    async fn unload(&mut self) {
        while let Some((result, done, records)) = self.inflight.next().await {
            self.completed(result, done, records);
        }
        self.groups.clear();
        self.timers.clear();
        self.scheduled.clear();
        self.batch.clear();
        self.batch_done.clear();
        self.records_since_snapshot = 0;
        self.log = None;
        self.lost = false;
        self.txns.clear();
        self.pending_offsets.clear();
    }

    /// Serves the loaded partition: false when every sender is gone, true
    /// when ownership was lost.
    async fn serve(&mut self, commands: &mut mpsc::Receiver<Command>) -> bool {
        let mut next_retention = self.host.monotonic() + self.retention_check;
        let mut next_check = self.host.monotonic() + OWNERSHIP_CHECK;
        let mut next_txn_check = self.host.monotonic() + self.txn_limits.abort_check;
        loop {
            let (now, _) = self.now();
            let next_timer = self.timers.peek().map(|Reverse((t, _))| *t);
            let wait_ms = next_timer
                .map_or(u64::MAX, |t| t.saturating_sub(now))
                .min(next_retention.saturating_sub(self.host.monotonic()).as_millis() as u64)
                .min(next_check.saturating_sub(self.host.monotonic()).as_millis() as u64)
                .min(next_txn_check.saturating_sub(self.host.monotonic()).as_millis() as u64);
            let sleep = self.host.sleep(Duration::from_millis(wait_ms.min(3_600_000)));
            let wake = tokio::select! {
                command = commands.recv() => Wake::Command(command),
                Some(appended) = self.inflight.next(), if !self.inflight.is_empty() => Wake::Appended(appended),
                _ = sleep => Wake::Timer,
            };
            match wake {
                Wake::Command(None) => break,
                Wake::Command(Some(command)) => {
                    self.handle(command);
                    // Take the whole burst into one append.
                    while let Ok(command) = commands.try_recv() {
                        self.handle(command);
                    }
                }
                Wake::Appended((result, done, records)) => self.completed(result, done, records),
                Wake::Timer => {}
            }
            if self.host.monotonic() >= next_check {
                next_check = self.host.monotonic() + OWNERSHIP_CHECK;
                if !self.owned().await {
                    self.lost = true;
                }
            }
            if self.host.monotonic() >= next_txn_check {
                next_txn_check = self.host.monotonic() + self.txn_limits.abort_check;
                self.expire_txns();
            }
            if self.lost {
                return true;
            }
            self.fire_timers();
            if self.host.monotonic() >= next_retention {
                self.expire_offsets();
                next_retention = self.host.monotonic() + self.retention_check;
            }
            self.flush();
            if self.inflight.is_empty() && self.wants_snapshot() {
                self.snapshot().await;
            }
        }
        // Let the last appends finish so their commits are answered.
        while let Some((result, done, records)) = self.inflight.next().await {
            self.completed(result, done, records);
        }
        false
    }

    // ---- Commands -----------------------------------------------------------

    /// Group `id`, created empty (at `wall`) if it is new.
    fn group(&mut self, id: &str, wall: i64) -> &mut Group {
        let delay = self.config.initial_rebalance_delay_ms;
        self.groups.entry(id.to_owned()).or_insert_with(|| Group::new(id.to_owned(), delay, wall))
    }

    fn handle(&mut self, command: Command) {
        let (now, wall) = self.now();
        let config = Arc::clone(&self.config);
        let touched = match command {
            Command::Join(id, request, reply) => {
                self.group(&id, wall).join(&config, request, reply, now, wall);
                Some(id)
            }
            Command::Sync(id, request, reply) => match self.groups.get_mut(&id) {
                Some(group) => {
                    group.sync(request, reply, now, wall);
                    Some(id)
                }
                None => {
                    let _ = reply.send(SyncOutcome::error(errors::UNKNOWN_MEMBER_ID));
                    None
                }
            },
            Command::Heartbeat(id, who, reply) => {
                let code = match self.groups.get_mut(&id) {
                    Some(group) => group.heartbeat(&who.member_id, who.instance_id.as_deref(), who.generation, now),
                    None => errors::UNKNOWN_MEMBER_ID,
                };
                let _ = reply.send(code);
                Some(id)
            }
            Command::Leave(id, members, reply) => match self.groups.get_mut(&id) {
                Some(group) => {
                    let codes = members.iter().map(|(m, i)| group.leave(m, i.as_deref(), now, wall)).collect();
                    let _ = reply.send(Ok(codes));
                    Some(id)
                }
                None => {
                    let _ = reply.send(Ok(vec![errors::UNKNOWN_MEMBER_ID; members.len()]));
                    None
                }
            },
            Command::Commit(id, who, entries, reply) => {
                self.commit(&id, who, entries, reply, now, wall);
                Some(id)
            }
            Command::Fetch(id, keys, reply) => {
                let group = self.groups.get(&id);
                let found = match keys {
                    Some(keys) => keys
                        .into_iter()
                        .map(|k| {
                            let v = group.and_then(|g| g.offsets.get(&k).cloned());
                            (k, v)
                        })
                        .collect(),
                    None => group.map_or_else(Vec::new, |g| {
                        g.offsets.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect()
                    }),
                };
                let _ = reply.send(found);
                None
            }
            Command::Describe(id, reply) => {
                let _ = reply.send(self.groups.get(&id).map(Group::describe));
                None
            }
            Command::List(reply) => {
                let listings = self
                    .groups
                    .values()
                    .map(|g| Listing {
                        group: g.id().to_owned(),
                        protocol_type: g.protocol_type().to_owned(),
                        state: g.state().name(),
                    })
                    .collect();
                let _ = reply.send(listings);
                None
            }
            Command::Delete(id, reply) => {
                self.delete_group(id, reply);
                None
            }
            Command::OffsetDelete(id, keys, reply) => {
                self.offset_delete(id, keys, reply);
                None
            }
            other => {
                self.handle_txn(other, now, wall);
                None
            }
        };
        if let Some(id) = touched {
            self.after_change(&id);
        }
    }

    fn commit(
        &mut self,
        id: &str,
        who: Committer,
        entries: Vec<CommitEntry>,
        reply: oneshot::Sender<Vec<i16>>,
        now: u64,
        wall: i64,
    ) {
        let max_metadata = self.config.max_metadata_bytes;
        let group = self.group(id, wall);
        let code = group.check_commit(&who.member_id, who.instance_id.as_deref(), who.generation, now);
        if code != errors::NONE {
            let _ = reply.send(vec![code; entries.len()]);
            return;
        }
        let codes = metadata_codes(&entries, max_metadata);
        let mut stored = Vec::new();
        for (entry, code) in entries.into_iter().zip(&codes) {
            if *code == errors::NONE {
                self.batch.push(Record::Offset {
                    group: id.to_owned(),
                    key: entry.key.clone(),
                    value: Some(entry.value.clone()),
                });
                stored.push(entry);
            }
        }
        self.batch_done.push(Done::Commit { group: id.to_owned(), entries: stored, codes, reply });
    }

    fn delete_group(&mut self, id: String, reply: oneshot::Sender<i16>) {
        let Some(group) = self.groups.get(&id) else {
            let _ = reply.send(errors::GROUP_ID_NOT_FOUND);
            return;
        };
        if group.has_members() {
            let _ = reply.send(errors::NON_EMPTY_GROUP);
            return;
        }
        for key in group.offsets.keys() {
            self.batch.push(Record::Offset { group: id.clone(), key: key.clone(), value: None });
        }
        self.batch.push(Record::Group { group: id.clone(), value: None });
        self.batch_done.push(Done::Delete { group: id, reply });
    }

    fn offset_delete(&mut self, id: String, keys: Vec<OffsetKey>, reply: oneshot::Sender<Result<Vec<i16>, i16>>) {
        let Some(group) = self.groups.get(&id) else {
            let _ = reply.send(Err(errors::GROUP_ID_NOT_FOUND));
            return;
        };
        if group.has_members() && group.protocol_type() != "consumer" {
            let _ = reply.send(Err(errors::NON_EMPTY_GROUP));
            return;
        }
        // Offsets of topics a live member subscribes to stay (Kafka's rule);
        // an unreadable subscription protects every topic.
        let subscribed = if group.has_members() { Some(group.subscribed_topics()) } else { None };
        let codes: Vec<i16> = keys
            .iter()
            .map(|(topic, _)| match &subscribed {
                Some(None) => errors::GROUP_SUBSCRIBED_TO_TOPIC,
                Some(Some(topics)) if topics.iter().any(|t| self.mapper.pulsar(t).is_ok_and(|p| p == *topic)) => {
                    errors::GROUP_SUBSCRIBED_TO_TOPIC
                }
                _ => errors::NONE,
            })
            .collect();
        let deleted: Vec<OffsetKey> =
            keys.into_iter().zip(&codes).filter(|(_, c)| **c == errors::NONE).map(|(k, _)| k).collect();
        for key in &deleted {
            self.batch.push(Record::Offset { group: id.clone(), key: key.clone(), value: None });
        }
        self.batch_done.push(Done::OffsetDelete { group: id, keys: deleted, codes, reply });
    }

    /// Persists a group whose metadata changed and re-arms its timer.
    fn after_change(&mut self, id: &str) {
        let Some(group) = self.groups.get_mut(id) else { return };
        if group.is_removable() && group.generation() == 0 {
            // Created by a join that failed or never completed: nothing was
            // stored, so nothing to tombstone.
            self.groups.remove(id);
            return;
        }
        if group.take_dirty() {
            self.batch.push(Record::Group { group: id.to_owned(), value: Some(group.snapshot()) });
        }
        if let Some(deadline) = group.next_deadline() {
            if self.scheduled.get(id).is_none_or(|s| deadline < *s) {
                self.scheduled.insert(id.to_owned(), deadline);
                self.timers.push(Reverse((deadline, id.to_owned())));
            }
        }
    }

    fn fire_timers(&mut self) {
        let (now, wall) = self.now();
        while let Some(Reverse((t, _))) = self.timers.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((t, id))) = self.timers.pop() else { break };
            if self.scheduled.get(&id) == Some(&t) {
                self.scheduled.remove(&id);
            }
            if let Some(group) = self.groups.get_mut(&id) {
                group.on_timer(now, wall);
                self.after_change(&id);
            }
        }
    }

    fn expire_offsets(&mut self) {
        let (_, wall) = self.now();
        let retention = self.config.offsets_retention_ms;
        let mut expired = Vec::new();
        for group in self.groups.values() {
            let keys = group.expired_offsets(wall, retention);
            if !keys.is_empty() {
                expired.push((group.id().to_owned(), keys));
            }
        }
        // Groups with neither members nor offsets left (Kafka removes them too).
        let empty: Vec<String> = self.groups.values().filter(|g| g.is_removable()).map(|g| g.id().to_owned()).collect();
        for group in empty {
            self.groups.remove(&group);
            self.batch.push(Record::Group { group, value: None });
        }
        for (group, keys) in expired {
            tracing::info!(group = %group, offsets = keys.len(), "committed offsets expired (offsetsRetentionMinutes)");
            for key in &keys {
                self.batch.push(Record::Offset { group: group.clone(), key: key.clone(), value: None });
            }
            self.batch_done.push(Done::Expire { group, keys });
        }
    }

    // ---- Appends --------------------------------------------------------------

    /// Starts one append for everything batched.
    fn flush(&mut self) {
        if self.batch.is_empty() && self.batch_done.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.batch);
        let done = std::mem::take(&mut self.batch_done);
        let count = records.len();
        if count == 0 {
            // Nothing to write (e.g. a commit whose every offset was refused).
            self.inflight.push_back(Box::pin(std::future::ready((Ok(()), done, 0))));
            return;
        }
        let entry = NewEntry {
            payload: store::encode(&records),
            count: count as u32,
            format: FORMAT_GROUPS,
            flags: 0,
            max_timestamp_ms: -1,
        };
        let log = self.log.clone();
        self.inflight.push_back(Box::pin(async move {
            let result = match log {
                Some(log) => log.append(vec![entry], true).await.map(|_| ()),
                None => Err(HandlerError::new(ErrorKind::STATE, "coordinator partition not loaded")),
            };
            (result, done, count)
        }));
    }

    /// An append finished: apply what it wrote and answer.
    fn completed(&mut self, result: Result<(), HandlerError>, done: Vec<Done>, records: usize) {
        let failed = match &result {
            Ok(()) => {
                self.records_since_snapshot += records as u64;
                None
            }
            Err(e) if e.kind() == ErrorKind::NOT_OWNER => {
                // Another broker owns the partition now: the client finds it.
                self.lost = true;
                Some(errors::NOT_COORDINATOR)
            }
            Err(e) => {
                tracing::error!(partition = %self.ledger, error = %e, "coordinator append failed");
                Some(errors::from_handler(e))
            }
        };
        let (_, wall) = self.now();
        let delay = self.config.initial_rebalance_delay_ms;
        for d in done {
            match d {
                Done::Commit { group, entries, mut codes, reply } => {
                    if let Some(code) = failed {
                        codes.iter_mut().filter(|c| **c == errors::NONE).for_each(|c| *c = code);
                        let _ = reply.send(codes);
                        continue;
                    }
                    let g = self.groups.entry(group.clone()).or_insert_with(|| Group::new(group.clone(), delay, wall));
                    let mut ops = Vec::new();
                    for e in entries {
                        if let Ok(offset) = u64::try_from(e.value.offset) {
                            ops.push(MirrorOp::Seek { ledger: e.value.ledger.clone(), group: group.clone(), offset });
                        }
                        g.offsets.insert(e.key, e.value);
                    }
                    self.mirror_then(ops, move || {
                        let _ = reply.send(codes);
                    });
                }
                Done::Delete { group, reply } => {
                    if let Some(code) = failed {
                        let _ = reply.send(code);
                        continue;
                    }
                    let ops = match self.groups.remove(&group) {
                        Some(g) => g
                            .offsets
                            .values()
                            .map(|c| MirrorOp::Delete { ledger: c.ledger.clone(), group: group.clone() })
                            .collect(),
                        None => Vec::new(),
                    };
                    self.mirror_then(ops, move || {
                        let _ = reply.send(errors::NONE);
                    });
                }
                Done::OffsetDelete { group, keys, mut codes, reply } => {
                    if let Some(code) = failed {
                        codes.iter_mut().filter(|c| **c == errors::NONE).for_each(|c| *c = code);
                        let _ = reply.send(Ok(codes));
                        continue;
                    }
                    let ops = self.remove_offsets(&group, &keys);
                    self.mirror_then(ops, move || {
                        let _ = reply.send(Ok(codes));
                    });
                }
                Done::Expire { group, keys } => {
                    if failed.is_none() {
                        let ops = self.remove_offsets(&group, &keys);
                        self.mirror_then(ops, || {});
                    }
                }
                Done::Txn(done) => self.txn_completed(done, failed),
            }
        }
    }

    /// Removes offsets (and the group, when nothing is left of it); returns the
    /// cursors to delete.
    fn remove_offsets(&mut self, group: &str, keys: &[OffsetKey]) -> Vec<MirrorOp> {
        let Some(g) = self.groups.get_mut(group) else { return Vec::new() };
        let ops = keys
            .iter()
            .filter_map(|k| g.offsets.remove(k))
            .map(|c| MirrorOp::Delete { ledger: c.ledger, group: group.to_owned() })
            .collect();
        if g.is_removable() {
            self.groups.remove(group);
            self.batch.push(Record::Group { group: group.to_owned(), value: None });
        }
        ops
    }

    fn mirror_then(&self, ops: Vec<MirrorOp>, done: impl FnOnce() + Send + 'static) {
        let job = MirrorJob { ops, done: Box::new(done) };
        if let Err(mpsc::error::SendError(job)) = self.mirror.send(job) {
            // The mirror is gone (shutting down): the commit is durable anyway.
            (job.done)();
        }
    }

    // ---- Load and snapshot ------------------------------------------------------

    fn live_records(&self) -> u64 {
        self.groups.values().map(|g| 1 + g.offsets.len() as u64).sum::<u64>()
            + self.txns.len() as u64
            + self.pending_offsets.values().map(|p| p.len() as u64).sum::<u64>()
    }

    fn wants_snapshot(&self) -> bool {
        // The cheap test first: counting live records walks every group.
        self.records_since_snapshot >= SNAPSHOT_MIN_RECORDS && self.records_since_snapshot >= self.live_records()
    }

    fn snapshot_records(&self) -> Vec<Record> {
        let mut records = Vec::new();
        for g in self.groups.values() {
            records.push(Record::Group { group: g.id().to_owned(), value: Some(g.snapshot()) });
            for (key, value) in &g.offsets {
                records.push(Record::Offset { group: g.id().to_owned(), key: key.clone(), value: Some(value.clone()) });
            }
        }
        for (id, m) in &self.txns {
            records.push(Record::Txn { id: id.clone(), value: Some(m.clone()) });
        }
        for ((group, producer_id), offsets) in &self.pending_offsets {
            for (key, value) in offsets {
                records.push(Record::TxnOffset {
                    group: group.clone(),
                    producer_id: *producer_id,
                    key: key.clone(),
                    value: value.clone(),
                });
            }
        }
        records
    }

    /// Writes the live state and deletes the log before it.
    async fn snapshot(&mut self) {
        let records = self.snapshot_records();
        let mut entries = Vec::new();
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for record in records {
            bytes += 64 + record_size(&record);
            chunk.push(record);
            if bytes >= SNAPSHOT_ENTRY_BYTES {
                entries.push(std::mem::take(&mut chunk));
                bytes = 0;
            }
        }
        if !chunk.is_empty() || entries.is_empty() {
            entries.push(chunk);
        }
        let entries: Vec<NewEntry> = entries
            .into_iter()
            .map(|records| NewEntry {
                count: records.len().max(1) as u32,
                payload: store::encode(&records),
                format: FORMAT_GROUPS,
                flags: 0,
                max_timestamp_ms: -1,
            })
            .collect();
        let Some(log) = self.log.clone() else { return };
        let written = match log.append(entries, true).await {
            Ok(result) => result.appended.first().map(|a| a.base_offset),
            Err(e) => {
                tracing::warn!(partition = %self.ledger, error = %e, "coordinator snapshot not written; will retry");
                self.records_since_snapshot = 0;
                return;
            }
        };
        self.records_since_snapshot = 0;
        if let Some(start) = written {
            match log.delete_records(start).await {
                Ok(range) => {
                    tracing::debug!(partition = %self.ledger, start = range.start, end = range.end, "coordinator log compacted")
                }
                Err(e) => {
                    tracing::warn!(partition = %self.ledger, error = %e, "coordinator log not truncated after a snapshot")
                }
            }
        }
    }

    /// Rebuilds the groups from the partition's log.
    async fn load(&mut self) -> Result<(), HandlerError> {
        let log = self.host.open_partition(&self.ledger, OpenOptions::default()).await?;
        self.log = Some(log.clone());
        let range = log.range().await?;
        let mut offset = range.start;
        let mut records = 0u64;
        // Restored members' sessions start now, once for the whole replay.
        let (now, wall) = self.now();
        while offset < range.end {
            let request = ReadRequest { offset, max_entries: 1024, max_bytes: 8 << 20, wait_ms: 0 };
            let read = log.read(request).await?;
            if read.entries.is_empty() {
                break;
            }
            for entry in read.entries {
                offset = entry.meta.base_offset + u64::from(entry.meta.count.max(1));
                if entry.meta.format != FORMAT_GROUPS {
                    continue;
                }
                match store::decode(entry.payload) {
                    Ok(list) => {
                        records += list.len() as u64;
                        for record in list {
                            self.replay(record, now, wall);
                        }
                    }
                    Err(e) => tracing::error!(partition = %self.ledger, offset = entry.meta.base_offset, error = %e,
                        "coordinator entry skipped"),
                }
            }
        }
        self.records_since_snapshot = records.saturating_sub(self.live_records());
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in &ids {
            self.after_change(id);
        }
        self.resume_txns();
        tracing::info!(partition = self.index, groups = ids.len(), records, "coordinator partition loaded");
        Ok(())
    }

    fn replay(&mut self, record: Record, now: u64, wall: i64) {
        let delay = self.config.initial_rebalance_delay_ms;
        match record {
            Record::Offset { group, key, value: Some(v) } => {
                let g = self.groups.entry(group.clone()).or_insert_with(|| Group::new(group, delay, wall));
                g.offsets.insert(key, v);
            }
            Record::Offset { group, key, value: None } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.offsets.remove(&key);
                }
            }
            Record::Group { group, value: Some(snapshot) } => {
                let offsets = self.groups.remove(&group).map(|g| g.offsets).unwrap_or_default();
                let mut g = Group::restore(group.clone(), snapshot, delay, now);
                g.offsets = offsets;
                g.take_dirty();
                self.groups.insert(group, g);
            }
            Record::Txn { id, value: Some(m) } => {
                self.txns.insert(id, m);
            }
            Record::Txn { id, value: None } => {
                self.txns.remove(&id);
            }
            Record::TxnOffset { group, producer_id, key, value } => {
                self.pending_offsets.entry((group, producer_id)).or_default().insert(key, value);
            }
            Record::TxnOffsetEnd { group, producer_id, commit } => {
                let pending = self.pending_offsets.remove(&(group.clone(), producer_id)).unwrap_or_default();
                if commit && !pending.is_empty() {
                    let g = self.groups.entry(group.clone()).or_insert_with(|| Group::new(group, delay, wall));
                    g.offsets.extend(pending);
                }
            }
            Record::Group { group, value: None } => {
                // The group's metadata goes; offsets go only by their own
                // tombstones (a commit may have landed just before this one).
                if let Some(old) = self.groups.remove(&group) {
                    if !old.offsets.is_empty() {
                        let mut fresh = Group::new(group.clone(), delay, wall);
                        fresh.offsets = old.offsets;
                        self.groups.insert(group, fresh);
                    }
                }
            }
        }
    }
}

/// Each commit entry's code: OFFSET_METADATA_TOO_LARGE for a metadata
/// string over `max_metadata` bytes, else NONE.
fn metadata_codes(entries: &[CommitEntry], max_metadata: usize) -> Vec<i16> {
    let code = |e: &CommitEntry| {
        if e.value.metadata.len() > max_metadata {
            errors::OFFSET_METADATA_TOO_LARGE
        } else {
            errors::NONE
        }
    };
    entries.iter().map(code).collect()
}

fn record_size(record: &Record) -> usize {
    match record {
        Record::Txn { id, value } => {
            id.len() + value.as_ref().map_or(0, |m| m.partitions.iter().map(|(t, _)| t.len() + 8).sum::<usize>())
        }
        Record::TxnOffset { group, key, value, .. } => {
            group.len() + key.0.len() + value.ledger.len() + value.metadata.len()
        }
        Record::TxnOffsetEnd { group, .. } => group.len(),
        Record::Offset { group, key, value } => {
            group.len() + key.0.len() + value.as_ref().map_or(0, |v| v.ledger.len() + v.metadata.len())
        }
        Record::Group { group, value } => {
            group.len()
                + value.as_ref().map_or(0, |s| {
                    s.members.iter().map(|m| 64 + m.id.len() + m.subscription.len() + m.assignment.len()).sum()
                })
        }
    }
}
