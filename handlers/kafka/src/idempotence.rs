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
//! Gap: the state is not rebuilt from the log at start-up; after a restart a
//! producer's first batch is accepted whatever its sequence (as for an
//! unknown producer), so a retry that straddles a restart can be stored twice.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use crate::errors;

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
}

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
            let ahead = first > state.next;
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

#[cfg(test)]
mod tests {
    use super::*;

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
