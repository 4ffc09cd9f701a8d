//! The transaction coordinator's state machine: one transactional id's
//! metadata and the transitions Kafka's classic protocol ("transaction
//! version 1") makes on it, as pure functions. The coordinator partitions
//! ([`crate::coordinator::partition`]) keep the metadata, write it to their
//! system topic and write the markers ([`crate::coordinator::markers`]).
//!
//! Written by hand: this is the coordinator's core, whose every transition
//! the tests below pin to Kafka's (`TransactionMetadata`'s states and the
//! error each request gets in each state).
//!
//! A transition returns the new metadata to write to the state topic
//! before anything is answered ([`Step::Write`]), or an error code for the
//! client ([`Step::Refuse`]); [`Step::Done`] answers without a write (a
//! retry of an EndTxn that already completed).

use std::collections::BTreeSet;

use crate::errors;

/// CONCURRENT_TRANSACTIONS: the transaction is completing; retry.
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
/// INVALID_PRODUCER_ID_MAPPING: the producer id is not this transactional id's.
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
/// INVALID_TXN_STATE: the request does not fit the transaction's state.
pub const INVALID_TXN_STATE: i16 = 48;
/// INVALID_TRANSACTION_TIMEOUT: above `transaction.max.timeout.ms`.
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
/// PRODUCER_FENCED: a newer producer with the same transactional id took over.
pub const PRODUCER_FENCED: i16 = 90;

/// Where a transaction stands (Kafka's `TransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// A producer id, no transaction.
    Empty,
    /// Partitions (or offsets) added: records may be written.
    Ongoing,
    /// EndTxn(commit) accepted: markers being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fence: markers being written.
    PrepareAbort,
    /// Committed: every marker written.
    CompleteCommit,
    /// Aborted: every marker written.
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name of a state (DescribeTransactions, ListTransactions).
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
        }
    }

    /// Its tag in the state topic.
    pub fn tag(self) -> u8 {
        match self {
            Self::Empty => 0,
            Self::Ongoing => 1,
            Self::PrepareCommit => 2,
            Self::PrepareAbort => 3,
            Self::CompleteCommit => 4,
            Self::CompleteAbort => 5,
        }
    }

    /// The state of a tag.
    pub fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            0 => Self::Empty,
            1 => Self::Ongoing,
            2 => Self::PrepareCommit,
            3 => Self::PrepareAbort,
            4 => Self::CompleteCommit,
            5 => Self::CompleteAbort,
            _ => return None,
        })
    }

    /// Whether markers are being written.
    pub fn preparing(self) -> bool {
        matches!(self, Self::PrepareCommit | Self::PrepareAbort)
    }
}

/// A transactional id's metadata, as the state topic keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch; a producer with a lower one is fenced.
    pub epoch: i16,
    /// `transaction.timeout.ms` the producer asked for.
    pub timeout_ms: i32,
    /// Where the transaction stands.
    pub state: TxnState,
    /// The partitions (Kafka `topic`, `partition`) of the ongoing transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// The groups whose offsets it commits (AddOffsetsToTxn).
    pub groups: BTreeSet<String>,
    /// When the ongoing transaction began (Unix ms; -1 when none).
    pub started_ms: i64,
    /// The last change, Unix ms.
    pub updated_ms: i64,
}

/// What a request does to the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write this metadata, then answer success.
    Write(TxnMetadata),
    /// Answer success without a write.
    Done,
    /// Answer this error code.
    Refuse(i16),
}

/// The coordinator's limits.
#[derive(Debug, Clone, Copy)]
pub struct TxnLimits {
    /// `transaction.max.timeout.ms` (Kafka's default: 15 minutes).
    pub max_timeout_ms: i32,
}

impl TxnMetadata {
    /// A new transactional id's metadata: producer id `producer_id`, epoch 0.
    pub fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        Self {
            producer_id,
            epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            started_ms: -1,
            updated_ms: now_ms,
        }
    }

    /// Checks that a request comes from this id's current producer.
    fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), i16> {
        if producer_id != self.producer_id {
            return Err(INVALID_PRODUCER_ID_MAPPING);
        }
        if epoch < self.epoch {
            return Err(PRODUCER_FENCED);
        }
        if epoch > self.epoch {
            return Err(errors::INVALID_PRODUCER_EPOCH);
        }
        Ok(())
    }

    /// InitProducerId of an existing transactional id: the epoch is bumped
    /// (fencing the older producer); `fresh_id` is used once the epoch is
    /// exhausted. An ongoing transaction is aborted first
    /// (`PrepareAbort` with the bumped epoch; the client retries on
    /// CONCURRENT_TRANSACTIONS until it completes).
    pub fn init(&self, timeout_ms: i32, limits: TxnLimits, fresh_id: i64, now_ms: i64) -> Step {
        if timeout_ms <= 0 || timeout_ms > limits.max_timeout_ms {
            return Step::Refuse(INVALID_TRANSACTION_TIMEOUT);
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => Step::Refuse(CONCURRENT_TRANSACTIONS),
            TxnState::Ongoing => Step::Write(Self {
                epoch: self.epoch.saturating_add(1),
                state: TxnState::PrepareAbort,
                updated_ms: now_ms,
                ..self.clone()
            }),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let (producer_id, epoch) =
                    if self.epoch >= i16::MAX - 1 { (fresh_id, 0) } else { (self.producer_id, self.epoch + 1) };
                Step::Write(Self {
                    producer_id,
                    epoch,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    groups: BTreeSet::new(),
                    started_ms: -1,
                    updated_ms: now_ms,
                })
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets
    /// partition): the partitions join the transaction, which begins if
    /// none was ongoing.
    pub fn add_partitions(&self, producer_id: i64, epoch: i16, partitions: &[(String, i32)], now_ms: i64) -> Step {
        self.add(producer_id, epoch, partitions, &[], now_ms)
    }

    /// AddOffsetsToTxn: `group`'s offsets join the transaction.
    pub fn add_group(&self, producer_id: i64, epoch: i16, group: &str, now_ms: i64) -> Step {
        self.add(producer_id, epoch, &[], &[group.to_owned()], now_ms)
    }

    fn add(&self, producer_id: i64, epoch: i16, partitions: &[(String, i32)], groups: &[String], now_ms: i64) -> Step {
        if let Err(code) = self.check_producer(producer_id, epoch) {
            return Step::Refuse(code);
        }
        let known =
            partitions.iter().all(|p| self.partitions.contains(p)) && groups.iter().all(|g| self.groups.contains(g));
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => Step::Refuse(CONCURRENT_TRANSACTIONS),
            TxnState::Ongoing if known => Step::Done,
            TxnState::Ongoing | TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let begins = self.state != TxnState::Ongoing;
                let mut next = self.clone();
                if begins {
                    next.partitions.clear();
                    next.groups.clear();
                    next.started_ms = now_ms;
                }
                next.partitions.extend(partitions.iter().cloned());
                next.groups.extend(groups.iter().cloned());
                next.state = TxnState::Ongoing;
                next.updated_ms = now_ms;
                Step::Write(next)
            }
        }
    }

    /// EndTxn: an ongoing transaction moves to PrepareCommit or
    /// PrepareAbort (the markers are written next); a retry of an EndTxn
    /// that completed the same way is answered again.
    pub fn end(&self, producer_id: i64, epoch: i16, commit: bool, now_ms: i64) -> Step {
        if let Err(code) = self.check_producer(producer_id, epoch) {
            return Step::Refuse(code);
        }
        match (self.state, commit) {
            (TxnState::Ongoing, _) => Step::Write(Self {
                state: if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort },
                updated_ms: now_ms,
                ..self.clone()
            }),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Step::Done,
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Step::Refuse(CONCURRENT_TRANSACTIONS),
            // Kafka's producers abort an empty transaction themselves;
            // committing or aborting nothing is not a transaction.
            _ => Step::Refuse(INVALID_TXN_STATE),
        }
    }

    /// Once every marker is written: PrepareCommit → CompleteCommit,
    /// PrepareAbort → CompleteAbort (any other state stays).
    pub fn complete(&self, now_ms: i64) -> Option<Self> {
        let state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return None,
        };
        Some(Self {
            state,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            started_ms: -1,
            updated_ms: now_ms,
            ..self.clone()
        })
    }

    /// A transaction ongoing past its timeout is aborted by the
    /// coordinator, with the epoch bumped so that its producer is fenced
    /// (Kafka's timeout abort).
    pub fn expire(&self, now_ms: i64) -> Option<Self> {
        if !self.overdue(now_ms) {
            return None;
        }
        self.abort_now(now_ms)
    }

    /// Whether an ongoing transaction outlived its timeout.
    pub fn overdue(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && now_ms - self.started_ms > i64::from(self.timeout_ms)
    }

    /// Aborts the ongoing transaction with a bumped epoch (`None` if none).
    fn abort_now(&self, now_ms: i64) -> Option<Self> {
        (self.state == TxnState::Ongoing).then(|| Self {
            epoch: self.epoch.saturating_add(1),
            state: TxnState::PrepareAbort,
            updated_ms: now_ms,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TxnLimits = TxnLimits { max_timeout_ms: 900_000 };

    fn written(step: Step) -> TxnMetadata {
        match step {
            Step::Write(m) => m,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    fn tp(topic: &str, partition: i32) -> (String, i32) {
        (topic.to_owned(), partition)
    }

    #[test]
    fn a_transaction_commits_and_a_retried_end_is_answered_again() {
        let m = TxnMetadata::new(7, 60_000, 0);
        let m = written(m.add_partitions(7, 0, &[tp("a", 0), tp("b", 1)], 10));
        assert_eq!((m.state, m.started_ms, m.partitions.len()), (TxnState::Ongoing, 10, 2));
        // Adding what is already in adds nothing.
        assert_eq!(m.add_partitions(7, 0, &[tp("a", 0)], 11), Step::Done);
        let m = written(m.end(7, 0, true, 20));
        assert_eq!(m.state, TxnState::PrepareCommit);
        assert_eq!(m.end(7, 0, true, 21), Step::Refuse(CONCURRENT_TRANSACTIONS));
        assert_eq!(m.add_partitions(7, 0, &[tp("c", 0)], 21), Step::Refuse(CONCURRENT_TRANSACTIONS));
        let m = m.complete(30).expect("completes");
        assert_eq!((m.state, m.partitions.len(), m.started_ms), (TxnState::CompleteCommit, 0, -1));
        assert_eq!(m.end(7, 0, true, 31), Step::Done);
        assert_eq!(m.end(7, 0, false, 31), Step::Refuse(INVALID_TXN_STATE));
        // The next transaction starts from the completed one.
        let m = written(m.add_partitions(7, 0, &[tp("c", 0)], 40));
        assert_eq!((m.state, m.started_ms, m.partitions.len()), (TxnState::Ongoing, 40, 1));
    }

    #[test]
    fn a_second_producer_fences_the_first_and_aborts_its_transaction() {
        let first = written(TxnMetadata::new(7, 60_000, 0).add_partitions(7, 0, &[tp("a", 0)], 1));
        // The zombie's successor: the ongoing transaction is aborted with a bumped epoch.
        let fencing = written(first.init(60_000, LIMITS, 99, 5));
        assert_eq!((fencing.state, fencing.epoch), (TxnState::PrepareAbort, 1));
        assert_eq!(fencing.init(60_000, LIMITS, 99, 6), Step::Refuse(CONCURRENT_TRANSACTIONS));
        let aborted = fencing.complete(7).expect("completes");
        let second = written(aborted.init(60_000, LIMITS, 99, 8));
        assert_eq!((second.state, second.epoch, second.producer_id), (TxnState::Empty, 2, 7));
        // The first producer (epoch 0) is fenced from now on.
        assert_eq!(second.add_partitions(7, 0, &[tp("a", 0)], 9), Step::Refuse(PRODUCER_FENCED));
        assert_eq!(second.end(7, 0, true, 9), Step::Refuse(PRODUCER_FENCED));
        assert_eq!(second.add_partitions(8, 2, &[tp("a", 0)], 9), Step::Refuse(INVALID_PRODUCER_ID_MAPPING));
        assert_eq!(second.add_partitions(7, 3, &[tp("a", 0)], 9), Step::Refuse(errors::INVALID_PRODUCER_EPOCH));
    }

    #[test]
    fn timeouts_are_checked_and_overdue_transactions_aborted() {
        let m = TxnMetadata::new(7, 1_000, 0);
        assert_eq!(m.init(900_001, LIMITS, 99, 1), Step::Refuse(INVALID_TRANSACTION_TIMEOUT));
        assert_eq!(m.init(0, LIMITS, 99, 1), Step::Refuse(INVALID_TRANSACTION_TIMEOUT));
        let m = written(m.add_partitions(7, 0, &[tp("a", 0)], 100));
        assert_eq!(m.expire(1_100), None);
        let aborted = m.expire(1_101).expect("overdue");
        assert_eq!((aborted.state, aborted.epoch), (TxnState::PrepareAbort, 1));
        assert_eq!(aborted.end(7, 0, true, 1_102), Step::Refuse(PRODUCER_FENCED));
    }

    #[test]
    fn an_exhausted_epoch_takes_a_new_producer_id() {
        let m = TxnMetadata { epoch: i16::MAX - 1, ..TxnMetadata::new(7, 60_000, 0) };
        let m = written(m.init(60_000, LIMITS, 99, 1));
        assert_eq!((m.producer_id, m.epoch), (99, 0));
    }

    #[test]
    fn ending_without_a_transaction_is_refused() {
        let m = TxnMetadata::new(7, 60_000, 0);
        assert_eq!(m.end(7, 0, true, 1), Step::Refuse(INVALID_TXN_STATE));
        assert_eq!(m.end(7, 0, false, 1), Step::Refuse(INVALID_TXN_STATE));
        assert_eq!(m.complete(1), None);
    }
}
