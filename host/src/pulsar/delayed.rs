//! Delayed delivery (`deliver_at_time`, set by a producer's `deliverAfter`
//! or `deliverAt`) for one subscription: messages held back until due.
//!
//! The tracker is an index by time, not a copy of the messages: an entry
//! that is not due yet is remembered as (due time, offset), 16 bytes and
//! the B-tree's share, and read again from the ledger when due. It lives in
//! memory and is rebuilt after a restart the way Pulsar's in-memory tracker
//! is: a delayed message is not acknowledged, so the cursor's read position
//! starts again at or before it, and reading it again tracks it again with
//! the due time its metadata carries.
//!
//! Delivery is never early: the timer wakes at the earliest due time, but
//! not sooner than `delayedDeliveryTickTimeMillis` after its last wake-up
//! (the tick bounds how often a subscription with many delayed messages
//! wakes; it can make a delivery up to one tick late, never early).

use std::{collections::BTreeSet, time::Duration};

use tokio::time::Instant;

/// Delayed entries one subscription holds before it stops reading ahead:
/// about 50 MB of index. Entries past them are read once some are due.
pub const MAX_TRACKED: usize = 1_000_000;

/// The entries of one subscription not due yet.
#[derive(Debug)]
pub struct Tracker {
    due: BTreeSet<(i64, u64)>,
    tick: Duration,
    last_wake: Option<Instant>,
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Tracker {
    /// An empty tracker waking at most once a `tick`.
    pub fn new(tick: Duration) -> Self {
        Self { due: BTreeSet::new(), tick, last_wake: None }
    }

    /// Holds the entry at `base` until `at` (Unix ms).
    pub fn hold(&mut self, at: i64, base: u64) {
        self.due.insert((at, base));
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    /// Whether the subscription may read further ahead.
    pub fn has_room(&self) -> bool {
        self.due.len() < MAX_TRACKED
    }

    /// Forgets everything (the subscription was reset).
    pub fn clear(&mut self) {
        self.due.clear();
    }

    /// Everything held, due or not (the subscription no longer delays).
    pub fn take_all(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.due).into_iter().map(|(_, base)| base).collect()
    }

    /// When the timer should wake next, if anything is held.
    pub fn wake_at(&self) -> Option<Instant> {
        let (at, _) = self.due.first()?;
        let wait = Duration::from_millis(u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0));
        let due = Instant::now() + wait;
        Some(match self.last_wake {
            Some(last) => due.max(last + self.tick),
            None => due,
        })
    }

    /// The offsets due by now, in due order; the timer has fired.
    pub fn take_due(&mut self) -> Vec<u64> {
        self.last_wake = Some(Instant::now());
        let now = now_ms();
        let mut out = Vec::new();
        while let Some(first) = self.due.first().copied() {
            if first.0 > now {
                break;
            }
            self.due.pop_first();
            out.push(first.1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_released_before_it_is_due() {
        let mut t = Tracker::new(Duration::from_millis(1));
        let now = now_ms();
        t.hold(now + 60_000, 7);
        t.hold(now - 1, 3);
        t.hold(now - 2, 5);
        assert_eq!(t.take_due(), vec![5, 3], "due order");
        assert_eq!(t.len(), 1);
        assert!(t.wake_at().is_some_and(|w| w > Instant::now() + Duration::from_secs(50)));
        t.clear();
        assert!(t.wake_at().is_none());
    }
}
