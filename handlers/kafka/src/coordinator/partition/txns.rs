//! The transaction coordinator's side of a coordinator partition: the
//! transactional ids hashed to it (Kafka hashes them as it hashes group
//! ids), their metadata written to the partition's log before any answer,
//! and the groups' offsets committed inside transactions, pending until the
//! transaction ends.
//!
//! Kafka keeps transactions in a topic of their own (`__transaction_state`);
//! here they share the coordinator's system topic with the groups, as other
//! record kinds ([`super::store`]): one log, one replay and one snapshot per
//! partition, and FindCoordinator answers the same broker for a group and a
//! transactional id of the same hash.
//!
//! Requests change the metadata in memory at once (so the next request sees
//! it) and are answered once it is durable; a failed write puts the
//! previous metadata back. A PrepareCommit or PrepareAbort that is durable
//! starts the markers ([`crate::coordinator::markers`]), whose end comes
//! back as [`Command::TxnComplete`].

use std::time::Duration;

use super::{Command, CommitEntry, Committer, Done, Partition, Record};
use crate::{
    coordinator::markers::MarkerJob,
    errors,
    transactions::{self, Step, TxnMetadata},
};
use tokio::sync::oneshot;

/// InitProducerId with a transactional id.
#[derive(Debug)]
pub struct TxnInit {
    /// The transactional id.
    pub id: String,
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// A producer id to use if the id is new (or its epoch is exhausted).
    pub fresh_id: i64,
}

/// AddPartitionsToTxn or AddOffsetsToTxn.
#[derive(Debug)]
pub struct TxnAdd {
    /// The transactional id.
    pub id: String,
    /// Its producer.
    pub producer_id: i64,
    /// The producer's epoch.
    pub epoch: i16,
    /// Kafka topic and partition of each partition added.
    pub partitions: Vec<(String, i32)>,
    /// The group whose offsets join (AddOffsetsToTxn).
    pub group: Option<String>,
}

/// The transaction settings.
#[derive(Debug, Clone, Copy)]
pub struct TxnLimits {
    /// `transactionMaxTimeoutMs`.
    pub max_timeout_ms: i32,
    /// `transactionAbortTimedOutTransactionCleanupIntervalMs`.
    pub abort_check: Duration,
}

/// Whom to answer once a transaction's metadata is durable.
#[derive(Debug)]
pub enum Then {
    /// InitProducerId: the id and epoch (or CONCURRENT_TRANSACTIONS while
    /// the transaction it fenced is being aborted).
    Init(oneshot::Sender<Result<(i64, i16), i16>>),
    /// An error code (NONE).
    Code(oneshot::Sender<i16>),
    /// Nobody (a timeout's abort, a completion).
    Nothing,
}

/// What to do once an append with transaction records is durable.
#[derive(Debug)]
pub enum TxnDone {
    /// A transactional id's metadata.
    Meta { id: String, previous: Option<TxnMetadata>, written: TxnMetadata, then: Then },
    /// TxnOffsetCommit's pending offsets.
    Offsets {
        group: String,
        producer_id: i64,
        entries: Vec<CommitEntry>,
        codes: Vec<i16>,
        reply: oneshot::Sender<Vec<i16>>,
    },
    /// A transaction's end for a group's pending offsets.
    OffsetEnd { group: String, producer_id: i64, commit: bool, reply: oneshot::Sender<i16> },
}

impl Partition {
    /// Serves the transaction commands.
    pub(super) fn handle_txn(&mut self, command: Command, now: u64, wall: i64) {
        match command {
            Command::TxnInit(init, reply) => {
                let limits = transactions::TxnLimits { max_timeout_ms: self.txn_limits.max_timeout_ms };
                let step = match self.txns.get(&init.id) {
                    Some(m) => m.init(init.timeout_ms, limits, init.fresh_id, wall),
                    None if init.timeout_ms <= 0 || init.timeout_ms > limits.max_timeout_ms => {
                        Step::Refuse(transactions::INVALID_TRANSACTION_TIMEOUT)
                    }
                    None => Step::Write(TxnMetadata::new(init.fresh_id, init.timeout_ms, wall)),
                };
                match step {
                    Step::Write(m) => self.write_txn(init.id, m, Then::Init(reply)),
                    Step::Refuse(code) => {
                        let _ = reply.send(Err(code));
                    }
                    Step::Done => {
                        let answer = self
                            .txns
                            .get(&init.id)
                            .map(|m| (m.producer_id, m.epoch))
                            .ok_or(errors::UNKNOWN_SERVER_ERROR);
                        let _ = reply.send(answer);
                    }
                }
            }
            Command::TxnAdd(add, reply) => {
                let step = match self.txns.get(&add.id) {
                    None => Step::Refuse(transactions::INVALID_PRODUCER_ID_MAPPING),
                    Some(m) => match &add.group {
                        Some(group) => m.add_group(add.producer_id, add.epoch, group, wall),
                        None => m.add_partitions(add.producer_id, add.epoch, &add.partitions, wall),
                    },
                };
                self.step(add.id, step, reply);
            }
            Command::TxnEnd { id, producer_id, epoch, commit, reply } => {
                let step = match self.txns.get(&id) {
                    None => Step::Refuse(transactions::INVALID_PRODUCER_ID_MAPPING),
                    Some(m) => m.end(producer_id, epoch, commit, wall),
                };
                self.step(id, step, reply);
            }
            Command::TxnComplete { id, producer_id, epoch } => {
                let next = self
                    .txns
                    .get(&id)
                    .filter(|m| m.producer_id == producer_id && m.epoch == epoch)
                    .and_then(|m| m.complete(wall));
                if let Some(m) = next {
                    self.write_txn(id, m, Then::Nothing);
                }
            }
            Command::TxnOffsetCommit { group, producer_id, who, entries, reply } => {
                self.txn_offset_commit(group, producer_id, who, entries, reply, now, wall);
            }
            Command::TxnOffsetEnd { group, producer_id, commit, reply } => {
                if !self.pending_offsets.contains_key(&(group.clone(), producer_id)) {
                    let _ = reply.send(errors::NONE);
                    return;
                }
                self.batch.push(Record::TxnOffsetEnd { group: group.clone(), producer_id, commit });
                self.batch_done.push(Done::Txn(TxnDone::OffsetEnd { group, producer_id, commit, reply }));
            }
            Command::PendingOffsets(group, reply) => {
                let keys = self
                    .pending_offsets
                    .iter()
                    .filter(|((g, _), _)| *g == group)
                    .flat_map(|(_, offsets)| offsets.keys().cloned())
                    .collect();
                let _ = reply.send(keys);
            }
            Command::TxnDescribe(ids, reply) => {
                let found = ids.into_iter().map(|id| {
                    let m = self.txns.get(&id).cloned();
                    (id, m)
                });
                let _ = reply.send(found.collect());
            }
            Command::TxnList(reply) => {
                let _ = reply.send(self.txns.iter().map(|(id, m)| (id.clone(), m.clone())).collect());
            }
            // The group commands are served by the caller.
            _ => {}
        }
    }

    fn step(&mut self, id: String, step: Step, reply: oneshot::Sender<i16>) {
        match step {
            Step::Write(m) => self.write_txn(id, m, Then::Code(reply)),
            Step::Done => {
                let _ = reply.send(errors::NONE);
            }
            Step::Refuse(code) => {
                let _ = reply.send(code);
            }
        }
    }

    /// Takes `next` as `id`'s metadata now and writes it.
    fn write_txn(&mut self, id: String, next: TxnMetadata, then: Then) {
        let previous = self.txns.insert(id.clone(), next.clone());
        self.batch.push(Record::Txn { id: id.clone(), value: Some(next.clone()) });
        self.batch_done.push(Done::Txn(TxnDone::Meta { id, previous, written: next, then }));
    }

    #[allow(clippy::too_many_arguments)]
    fn txn_offset_commit(
        &mut self,
        group: String,
        producer_id: i64,
        who: Committer,
        entries: Vec<CommitEntry>,
        reply: oneshot::Sender<Vec<i16>>,
        now: u64,
        wall: i64,
    ) {
        // A consumer group's member commits with its generation (KIP-447);
        // -1 (older clients, standalone consumers) is not checked.
        if who.generation >= 0 {
            let code =
                self.group(&group, wall).check_commit(&who.member_id, who.instance_id.as_deref(), who.generation, now);
            if code != errors::NONE {
                let _ = reply.send(vec![code; entries.len()]);
                return;
            }
        }
        let codes = super::metadata_codes(&entries, self.config.max_metadata_bytes);
        let mut stored = Vec::new();
        for (entry, code) in entries.into_iter().zip(&codes) {
            if *code == errors::NONE {
                self.batch.push(Record::TxnOffset {
                    group: group.clone(),
                    producer_id,
                    key: entry.key.clone(),
                    value: entry.value.clone(),
                });
                stored.push(entry);
            }
        }
        self.batch_done.push(Done::Txn(TxnDone::Offsets { group, producer_id, entries: stored, codes, reply }));
    }

    /// An append with transaction records finished (`failed`: its error).
    pub(super) fn txn_completed(&mut self, done: TxnDone, failed: Option<i16>) {
        match done {
            TxnDone::Meta { id, previous, written, then } => {
                if let Some(code) = failed {
                    // Put the previous metadata back, unless a later request changed it.
                    if self.txns.get(&id) == Some(&written) {
                        match previous {
                            Some(m) => self.txns.insert(id, m),
                            None => self.txns.remove(&id),
                        };
                    }
                    match then {
                        Then::Init(reply) => {
                            let _ = reply.send(Err(code));
                        }
                        Then::Code(reply) => {
                            let _ = reply.send(code);
                        }
                        Then::Nothing => {}
                    }
                    return;
                }
                if written.state.preparing() {
                    self.start_markers(&id, &written);
                }
                match then {
                    Then::Init(reply) => {
                        let answer = if written.state.preparing() {
                            Err(transactions::CONCURRENT_TRANSACTIONS)
                        } else {
                            Ok((written.producer_id, written.epoch))
                        };
                        let _ = reply.send(answer);
                    }
                    Then::Code(reply) => {
                        let _ = reply.send(errors::NONE);
                    }
                    Then::Nothing => {}
                }
            }
            TxnDone::Offsets { group, producer_id, entries, mut codes, reply } => {
                if let Some(code) = failed {
                    codes.iter_mut().filter(|c| **c == errors::NONE).for_each(|c| *c = code);
                    let _ = reply.send(codes);
                    return;
                }
                let pending = self.pending_offsets.entry((group, producer_id)).or_default();
                for e in entries {
                    pending.insert(e.key, e.value);
                }
                let _ = reply.send(codes);
            }
            TxnDone::OffsetEnd { group, producer_id, commit, reply } => {
                if let Some(code) = failed {
                    let _ = reply.send(code);
                    return;
                }
                let pending = self.pending_offsets.remove(&(group.clone(), producer_id)).unwrap_or_default();
                if !commit || pending.is_empty() {
                    let _ = reply.send(errors::NONE);
                    return;
                }
                let (_, wall) = self.now();
                let g = self.group(&group, wall);
                let mut ops = Vec::new();
                for (key, value) in pending {
                    if let Ok(offset) = u64::try_from(value.offset) {
                        ops.push(super::MirrorOp::Seek { ledger: value.ledger.clone(), group: group.clone(), offset });
                    }
                    g.offsets.insert(key, value);
                }
                self.mirror_then(ops, move || {
                    let _ = reply.send(errors::NONE);
                });
            }
        }
    }

    /// Aborts the transactions that outlived their timeout.
    pub(super) fn expire_txns(&mut self) {
        let (_, wall) = self.now();
        let overdue: Vec<(String, TxnMetadata)> =
            self.txns.iter().filter_map(|(id, m)| Some((id.clone(), m.expire(wall)?))).collect();
        for (id, m) in overdue {
            tracing::info!(transactional_id = %id, producer_id = m.producer_id, timeout_ms = m.timeout_ms,
                "transaction timed out: aborted, its producer fenced");
            self.write_txn(id, m, Then::Nothing);
        }
    }

    /// After a load: the transactions that were ending are ended again.
    pub(super) fn resume_txns(&mut self) {
        let ending: Vec<(String, TxnMetadata)> =
            self.txns.iter().filter(|(_, m)| m.state.preparing()).map(|(id, m)| (id.clone(), m.clone())).collect();
        for (id, m) in ending {
            tracing::info!(transactional_id = %id, state = m.state.name(), "transaction ended again after a load");
            self.start_markers(&id, &m);
        }
    }

    fn start_markers(&self, id: &str, m: &TxnMetadata) {
        let job = MarkerJob {
            id: id.to_owned(),
            producer_id: m.producer_id,
            epoch: m.epoch,
            commit: m.state == transactions::TxnState::PrepareCommit,
            partitions: m.partitions.iter().cloned().collect(),
            groups: m.groups.iter().cloned().collect(),
        };
        let markers = std::sync::Arc::clone(&self.markers);
        self.host.spawn("kafka-txn-markers", markers.run(self.host.clone(), job, self.index));
    }
}
