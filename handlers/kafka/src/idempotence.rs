//! Idempotent producers: each batch carries its producer id, epoch and the
//! sequence number of its first record; a batch the broker has already
//! stored (a retry after a lost answer) is answered with its first offset and
//! not stored again, and a gap in the sequence is refused (Kafka's
//! OUT_OF_ORDER_SEQUENCE_NUMBER), so the client does not reorder or lose
//! records.
//!
//! The state is per (partition, producer id), kept in memory: the epoch, the
//! next sequence expected, and the last five batches with their offsets, as
//! Kafka keeps them. A batch is checked and its sequence reserved before its
//! append is enqueued (requests of one connection are checked in order), and
//! its offset recorded when the append completes; a failed append releases
//! the reservation so the client's retry is accepted. A batch ahead of the
//! next sequence gets a retriable error (NOT_ENOUGH_REPLICAS) rather than
//! OUT_OF_ORDER_SEQUENCE_NUMBER, which clients treat as fatal: the first
//! requests to a topic can reach this check out of order while its lookup
//! completes.
//!
//! After a restart, the state of a partition is rebuilt from its log before
//! the first idempotent batch to it is checked ([`Sequences::load_once`]):
//! the producers of the batches among its last [`TAIL_RECORDS`] records (at
//! most [`TAIL_BYTES`] read) get their epoch, next sequence and last five
//! batches back, so a retry that straddles a restart is answered with its
//! first offset rather than stored twice. Kafka replays its producer
//! snapshots instead; a producer whose last batch is older than that tail
//! starts over as an unknown producer (its first batch is accepted whatever
//! its sequence), as in Kafka once a producer's state has expired. With
//! `entryFormat=pulsar` the stored entries keep no producer fields, so
//! nothing is rebuilt. Gaps: a duplicate is answered without the
//! LogAppendTime of the original.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    sync::{Arc, Mutex},
};

use polyport_handler_api::{storage::ReadRequest, ErrorKind, HandlerError, Partition};

use crate::{errors, records};

/// Records from the end of a partition's log read to rebuild its producers.
pub const TAIL_RECORDS: u64 = 16_384;
/// Bytes read at most for that.
pub const TAIL_BYTES: u32 = 8 << 20;

/// Batches remembered per producer and partition (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence is 5).
const REMEMBERED: usize = 5;

#[derive(Debug)]
struct Remembered {
    first: i32,
    last: i32,
    /// Set once the append completed.
    offset: Option<i64>,
}

#[derive(Debug)]
struct ProducerState {
    epoch: i16,
    next: i32,
    recent: VecDeque<Remembered>,
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Store it (its sequence is reserved).
    Append,
    /// Already stored at this first offset: answer, do not store.
    Duplicate(i64),
    /// Refuse it with this error code.
    Refuse(i16),
}

/// The sequence state of every idempotent producer on every partition.
#[derive(Debug, Default)]
pub struct Sequences {
    /// By partition, then producer id: a lookup borrows the partition name.
    states: Mutex<HashMap<String, HashMap<i64, ProducerState>>>,
    /// Partitions whose producers were rebuilt from the log (or are being).
    loaded: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<()>>>>,
}

/// An idempotent batch found in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBatch {
    /// Its producer.
    pub producer_id: i64,
    /// The producer's epoch.
    pub epoch: i16,
    /// The sequence of its first record.
    pub first: i32,
    /// Its records.
    pub count: u32,
    /// The offset it was stored at.
    pub offset: i64,
    /// A transaction marker: it carries the producer's epoch, no sequence.
    pub marker: bool,
}

/// `ProducerState::next` of a producer whose next sequence is not known (a
/// marker raised its epoch on a partition without its batches in view):
/// its next batch is taken whatever its sequence.
const UNKNOWN_NEXT: i32 = -1;

fn last_sequence(first: i32, count: u32) -> i32 {
    // Sequences wrap at i32::MAX, as in Kafka.
    ((i64::from(first) + i64::from(count) - 1) % (i64::from(i32::MAX) + 1)) as i32
}

fn next_of(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

impl Sequences {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<i64, ProducerState>>> {
        self.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `read_tail` and takes the producers it finds, once per partition
    /// and process, before any batch to `partition` is checked: callers
    /// await it first. Later calls return at once (without yielding).
    /// A failed read leaves the partition to load again: the caller refuses
    /// the idempotent batches with a retriable error meanwhile, since
    /// accepting them without the state could store a retry twice.
    pub async fn load_once<F, Fut, E>(&self, partition: &str, read_tail: F) -> Result<(), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<StoredBatch>, E>>,
    {
        let cell = {
            let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Every idempotent produce passes here: the name is copied only
            // the first time.
            match loaded.get(partition) {
                Some(cell) => Arc::clone(cell),
                None => Arc::clone(loaded.entry(partition.to_owned()).or_default()),
            }
        };
        cell.get_or_try_init(|| async {
            let batches = read_tail().await?;
            self.seed(partition, &batches);
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// Takes the producer state that `batches` (in offset order) leave.
    /// Producers already known here keep their state.
    fn seed(&self, partition: &str, batches: &[StoredBatch]) {
        let mut rebuilt: HashMap<i64, ProducerState> = HashMap::new();
        for b in batches.iter().filter(|b| b.producer_id >= 0 && (b.first >= 0 || b.marker)) {
            let state = rebuilt.entry(b.producer_id).or_insert_with(|| ProducerState {
                epoch: b.epoch,
                next: if b.marker { UNKNOWN_NEXT } else { 0 },
                recent: VecDeque::new(),
            });
            if b.marker {
                // A marker of a newer epoch fences the older one here too.
                if b.epoch > state.epoch {
                    *state = ProducerState { epoch: b.epoch, next: 0, recent: VecDeque::new() };
                }
                continue;
            }
            if b.epoch < state.epoch {
                continue;
            }
            if b.epoch > state.epoch {
                state.epoch = b.epoch;
                state.recent.clear();
            }
            let last = last_sequence(b.first, b.count);
            state.next = next_of(last);
            state.recent.push_back(Remembered { first: b.first, last, offset: Some(b.offset) });
            if state.recent.len() > REMEMBERED {
                state.recent.pop_front();
            }
        }
        if rebuilt.is_empty() {
            return;
        }
        tracing::info!(partition, producers = rebuilt.len(), "idempotent producers rebuilt from the log's tail");
        let mut states = self.lock();
        let producers = states.entry(partition.to_owned()).or_default();
        for (id, state) in rebuilt {
            producers.entry(id).or_insert(state);
        }
    }

    /// Checks a batch of `count` records and reserves its sequence.
    pub fn check(&self, partition: &str, producer_id: i64, epoch: i16, first: i32, count: u32) -> Verdict {
        if producer_id < 0 || first < 0 {
            return Verdict::Append;
        }
        let last = last_sequence(first, count);
        let mut states = self.lock();
        if !states.contains_key(partition) {
            states.insert(partition.to_owned(), HashMap::new());
        }
        let Some(producers) = states.get_mut(partition) else { return Verdict::Append };
        let Some(state) = producers.get_mut(&producer_id) else {
            // An unknown producer (new, or known before a restart): start here.
            let recent = VecDeque::from([Remembered { first, last, offset: None }]);
            producers.insert(producer_id, ProducerState { epoch, next: next_of(last), recent });
            return Verdict::Append;
        };
        if epoch < state.epoch {
            return Verdict::Refuse(errors::INVALID_PRODUCER_EPOCH);
        }
        if epoch > state.epoch {
            // A new epoch starts its sequences over.
            if first != 0 {
                return Verdict::Refuse(errors::OUT_OF_ORDER_SEQUENCE_NUMBER);
            }
            state.epoch = epoch;
            state.recent.clear();
        } else if state.next == UNKNOWN_NEXT {
            // Known by a marker only: this batch sets the sequence.
        } else if let Some(seen) = state.recent.iter().find(|r| r.first == first && r.last == last) {
            return match seen.offset {
                Some(offset) => Verdict::Duplicate(offset),
                // The original is still being stored: the client retries later.
                None => Verdict::Refuse(errors::NOT_ENOUGH_REPLICAS),
            };
        } else if first != state.next {
            // Ahead: an earlier batch of the producer may still be on its way
            // (requests of one connection are checked in order, but a topic
            // lookup can reorder the very first ones), so the client retries.
            // Behind and not remembered: out of order for good.
            // Sequences wrap at i32::MAX: ahead means less than half the
            // sequence space forward.
            let forward = (i64::from(first) - i64::from(state.next)).rem_euclid(i64::from(i32::MAX) + 1);
            let ahead = forward < (1 << 30);
            return Verdict::Refuse(if ahead {
                errors::NOT_ENOUGH_REPLICAS
            } else {
                errors::OUT_OF_ORDER_SEQUENCE_NUMBER
            });
        }
        state.next = next_of(last);
        state.recent.push_back(Remembered { first, last, offset: None });
        if state.recent.len() > REMEMBERED {
            state.recent.pop_front();
        }
        Verdict::Append
    }

    /// A transaction marker of `producer_id` at `epoch` was written to
    /// `partition`: an epoch above the one known here fences the older
    /// producer on this partition too (its later batches get
    /// INVALID_PRODUCER_EPOCH, as in Kafka), and the new epoch's sequences
    /// start at 0.
    pub fn fence(&self, partition: &str, producer_id: i64, epoch: i16) {
        let mut states = self.lock();
        let producers = match states.get_mut(partition) {
            Some(p) => p,
            None => states.entry(partition.to_owned()).or_default(),
        };
        match producers.get_mut(&producer_id) {
            Some(state) if state.epoch < epoch => {
                *state = ProducerState { epoch, next: 0, recent: VecDeque::new() };
            }
            Some(_) => {}
            None => {
                producers.insert(producer_id, ProducerState { epoch, next: UNKNOWN_NEXT, recent: VecDeque::new() });
            }
        }
    }

    /// Records where a reserved batch was stored (`Some(offset)`), or
    /// releases its reservation when the append failed.
    pub fn completed(&self, partition: &str, producer_id: i64, first: i32, offset: Option<i64>) {
        if producer_id < 0 || first < 0 {
            return;
        }
        let mut states = self.lock();
        let Some(state) = states.get_mut(partition).and_then(|p| p.get_mut(&producer_id)) else { return };
        match offset {
            Some(offset) => {
                if let Some(r) = state.recent.iter_mut().find(|r| r.first == first) {
                    r.offset = Some(offset);
                }
            }
            None => {
                // Not stored: the retry must be accepted, and what came after
                // it is refused. A batch an earlier release already cut off
                // leaves the sequence where that release put it.
                if let Some(i) = state.recent.iter().position(|r| r.first == first) {
                    state.recent.truncate(i);
                    state.next = first;
                }
            }
        }
    }
}

/// The idempotent Kafka batches among the last [`TAIL_RECORDS`] records of
/// `partition` (fewer when they take more than [`TAIL_BYTES`]). The read is
/// tried again when retention or DeleteRecords moved the log start
/// meanwhile; another error is returned (the produce is refused with a
/// retriable error and the next one tries again).
pub async fn stored_tail(partition: Partition) -> Result<Vec<StoredBatch>, HandlerError> {
    let mut back = TAIL_RECORDS;
    let mut attempts = 0;
    loop {
        let range = partition.range().await?;
        let offset = range.end.saturating_sub(back).max(range.start);
        if offset >= range.end {
            return Ok(Vec::new());
        }
        let request = ReadRequest { offset, max_entries: u32::MAX, max_bytes: TAIL_BYTES, wait_ms: 0 };
        let read = match partition.read(request).await {
            Ok(read) => read,
            Err(e) if e.kind() == ErrorKind::OUT_OF_RANGE && attempts < 3 => {
                attempts += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let reached = read.entries.last().is_none_or(|e| e.meta.base_offset + u64::from(e.meta.count) >= range.end);
        // Large records: the byte limit ended the read early, so start
        // closer to the end (a read of the last record always reaches it).
        if !reached && back > 1 {
            back = (back / 8).max(1);
            continue;
        }
        return Ok(read
            .entries
            .iter()
            .filter(|e| e.meta.format == records::FORMAT_KAFKA)
            .filter_map(|e| {
                let (producer_id, epoch, first, count) = records::producer_of(&e.payload)?;
                // Markers carry the producer's id and epoch, no sequence.
                let marker = matches!(records::txn_kind(&e.payload), records::TxnKind::Marker(..));
                Some(StoredBatch { producer_id, epoch, first, count, offset: e.meta.base_offset as i64, marker })
            })
            .collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_rebuilt_from_stored_batches_answers_retries_and_fences_old_epochs() {
        let s = Sequences::default();
        let b = |producer_id, epoch, first, count, offset| StoredBatch {
            producer_id,
            epoch,
            first,
            count,
            offset,
            marker: false,
        };
        s.seed("p", &[b(7, 0, 0, 3, 0), b(8, 1, 0, 1, 3), b(7, 0, 3, 2, 4), b(8, 2, 0, 1, 5), b(-1, -1, -1, 1, 6)]);
        assert_eq!(s.check("p", 7, 0, 3, 2), Verdict::Duplicate(4), "the last batch");
        assert_eq!(s.check("p", 7, 0, 0, 3), Verdict::Duplicate(0), "an earlier one");
        assert_eq!(s.check("p", 7, 0, 6, 1), Verdict::Refuse(errors::NOT_ENOUGH_REPLICAS), "ahead");
        assert_eq!(s.check("p", 7, 0, 5, 1), Verdict::Append, "the next");
        assert_eq!(s.check("p", 8, 1, 1, 1), Verdict::Refuse(errors::INVALID_PRODUCER_EPOCH), "fenced");
        assert_eq!(s.check("p", 8, 2, 0, 1), Verdict::Duplicate(5), "the new epoch's batch");
        assert_eq!(s.check("q", 7, 0, 9, 1), Verdict::Append, "another partition knows nothing of it");
    }

    #[test]
    fn a_marker_of_a_newer_epoch_fences_the_older_producer_on_its_partition() {
        let s = Sequences::default();
        assert_eq!(s.check("p", 7, 0, 0, 10), Verdict::Append);
        s.completed("p", 7, 0, Some(0));
        // The successor's InitProducerId aborted the transaction with epoch 1.
        s.fence("p", 7, 1);
        assert_eq!(s.check("p", 7, 0, 10, 1), Verdict::Refuse(errors::INVALID_PRODUCER_EPOCH), "the zombie");
        assert_eq!(s.check("p", 7, 1, 0, 5), Verdict::Append, "the successor starts at 0");
        // A marker of the current epoch changes nothing.
        s.fence("p", 7, 1);
        assert_eq!(s.check("p", 7, 1, 5, 5), Verdict::Append);
        // On a partition without the producer's batches: fenced, sequence unknown.
        s.fence("q", 7, 1);
        assert_eq!(s.check("q", 7, 0, 3, 1), Verdict::Refuse(errors::INVALID_PRODUCER_EPOCH));
        assert_eq!(s.check("q", 7, 1, 40, 1), Verdict::Append);
        assert_eq!(s.check("q", 7, 1, 42, 1), Verdict::Refuse(errors::NOT_ENOUGH_REPLICAS), "known from then on");
        // After a restart, the log's tail says the same.
        let r = Sequences::default();
        let data = StoredBatch { producer_id: 7, epoch: 0, first: 0, count: 10, offset: 0, marker: false };
        let marker = StoredBatch { producer_id: 7, epoch: 1, first: -1, count: 1, offset: 10, marker: true };
        r.seed("p", &[data, marker]);
        assert_eq!(r.check("p", 7, 0, 10, 1), Verdict::Refuse(errors::INVALID_PRODUCER_EPOCH));
        assert_eq!(r.check("p", 7, 1, 0, 1), Verdict::Append);
    }

    #[test]
    fn ahead_and_behind_allow_for_the_wrap_of_sequences() {
        let s = Sequences::default();
        let near_end = i32::MAX - 9;
        assert_eq!(s.check("p", 9, 0, near_end, 5), Verdict::Append);
        // Next is i32::MAX - 4: a batch from 0 (after the wrap) is ahead.
        assert_eq!(s.check("p", 9, 0, 0, 1), Verdict::Refuse(errors::NOT_ENOUGH_REPLICAS), "ahead, past the wrap");
        assert_eq!(s.check("p", 9, 0, near_end - 20, 1), Verdict::Refuse(errors::OUT_OF_ORDER_SEQUENCE_NUMBER));
        assert_eq!(s.check("p", 9, 0, i32::MAX - 4, 6), Verdict::Append, "up to 0");
        assert_eq!(s.check("p", 9, 0, 1, 1), Verdict::Append, "then 1");
        assert_eq!(
            s.check("p", 9, 0, i32::MAX - 100, 1),
            Verdict::Refuse(errors::OUT_OF_ORDER_SEQUENCE_NUMBER),
            "behind, before the wrap"
        );
    }

    #[test]
    fn retries_are_answered_gaps_refused_and_failures_released() {
        let s = Sequences::default();
        assert_eq!(s.check("p", -1, -1, -1, 3), Verdict::Append, "not idempotent");
        assert_eq!(s.check("p", 7, 0, 0, 3), Verdict::Append);
        assert_eq!(s.check("p", 7, 0, 0, 3), Verdict::Refuse(errors::NOT_ENOUGH_REPLICAS), "in flight");
        s.completed("p", 7, 0, Some(100));
        assert_eq!(s.check("p", 7, 0, 0, 3), Verdict::Duplicate(100), "a retry");
        assert_eq!(s.check("p", 7, 0, 5, 2), Verdict::Refuse(errors::NOT_ENOUGH_REPLICAS), "ahead: retried");
        assert_eq!(s.check("p", 7, 0, 1, 1), Verdict::Refuse(errors::OUT_OF_ORDER_SEQUENCE_NUMBER), "behind");
        assert_eq!(s.check("p", 7, 0, 3, 2), Verdict::Append);
        s.completed("p", 7, 3, None);
        assert_eq!(s.check("p", 7, 0, 3, 2), Verdict::Append, "the failed batch again");
        s.completed("p", 7, 3, Some(103));
        assert_eq!(s.check("q", 7, 0, 40, 1), Verdict::Append, "another partition, unknown producer");
        assert_eq!(
            s.check("p", 7, 1, 4, 1),
            Verdict::Refuse(errors::OUT_OF_ORDER_SEQUENCE_NUMBER),
            "new epoch at 0 only"
        );
        assert_eq!(s.check("p", 7, 1, 0, 1), Verdict::Append);
        assert_eq!(s.check("p", 7, 0, 5, 1), Verdict::Refuse(errors::INVALID_PRODUCER_EPOCH), "fenced");
        assert_eq!(last_sequence(i32::MAX, 2), 0, "sequences wrap");
    }

    #[test]
    fn failed_batches_released_oldest_first_let_the_oldest_retry() {
        let s = Sequences::default();
        assert_eq!(s.check("p", 7, 0, 0, 2), Verdict::Append);
        s.completed("p", 7, 0, Some(0));
        assert_eq!(s.check("p", 7, 0, 2, 2), Verdict::Append);
        assert_eq!(s.check("p", 7, 0, 4, 2), Verdict::Append);
        // Both appends failed; released in order.
        s.completed("p", 7, 2, None);
        s.completed("p", 7, 4, None);
        assert_eq!(s.check("p", 7, 0, 2, 2), Verdict::Append, "the oldest failed batch is next");
    }
}
