//! Counters a ledger keeps for stats and metrics: what was appended (counted
//! here, by the ledger) and what its users report: messages delivered to
//! consumers, connected producers and consumers, and the cursors a protocol
//! handler owns. Atomics only, so the hot paths pay one relaxed add each;
//! they start at zero when the ledger opens, like Pulsar's topic counters.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
        Mutex,
    },
};

/// A ledger's counters.
#[derive(Debug, Default)]
pub struct LedgerStats {
    entries_in: AtomicU64,
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
    producers: AtomicI64,
    consumers: AtomicI64,
    /// Rates over the last sampling interval: (in msg/s, in bytes/s, out msg/s, out bytes/s), as f64 bits.
    rates: [AtomicU64; 4],
    /// The counters at the last sample, with its time (ms).
    last_sample: Mutex<Option<(i64, [u64; 4])>>,
    /// Cursors that a protocol handler opened, with its protocol's name (a
    /// Kafka group's cursor): listings say whose a subscription is.
    owners: Mutex<BTreeMap<String, String>>,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Entries appended since the ledger opened.
    pub entries_in: u64,
    /// Messages appended.
    pub messages_in: u64,
    /// Payload bytes appended.
    pub bytes_in: u64,
    /// Messages delivered to consumers.
    pub messages_out: u64,
    /// Payload bytes delivered to consumers.
    pub bytes_out: u64,
    /// Producers connected now.
    pub producers: i64,
    /// Consumers connected now.
    pub consumers: i64,
    /// Messages appended per second over the last sampling interval.
    pub rate_in: f64,
    /// Bytes appended per second.
    pub throughput_in: f64,
    /// Messages delivered per second.
    pub rate_out: f64,
    /// Bytes delivered per second.
    pub throughput_out: f64,
}

impl LedgerStats {
    pub(crate) fn appended(&self, entries: u64, messages: u64, bytes: u64) {
        self.entries_in.fetch_add(entries, Relaxed);
        self.messages_in.fetch_add(messages, Relaxed);
        self.bytes_in.fetch_add(bytes, Relaxed);
    }

    /// Counts messages delivered to a consumer.
    pub fn delivered(&self, messages: u64, bytes: u64) {
        self.messages_out.fetch_add(messages, Relaxed);
        self.bytes_out.fetch_add(bytes, Relaxed);
    }

    /// A producer connected (`1`) or left (`-1`).
    pub fn producers_add(&self, delta: i64) {
        self.producers.fetch_add(delta, Relaxed);
    }

    /// A consumer connected (`1`) or left (`-1`).
    pub fn consumers_add(&self, delta: i64) {
        self.consumers.fetch_add(delta, Relaxed);
    }

    /// Records that `protocol` owns cursor `name` (idempotent).
    pub fn set_cursor_owner(&self, name: &str, protocol: &str) {
        let mut owners = self.owners.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if owners.get(name).map(String::as_str) != Some(protocol) {
            owners.insert(name.to_owned(), protocol.to_owned());
        }
    }

    /// Forgets cursor `name`'s owner.
    pub fn clear_cursor_owner(&self, name: &str) {
        self.owners.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(name);
    }

    /// The protocol that owns cursor `name`, if a handler opened it.
    pub fn cursor_owner(&self, name: &str) -> Option<String> {
        self.owners.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(name).cloned()
    }

    /// Computes the rates since the previous sample (at `now_ms`); the
    /// first sample only records the counters.
    pub fn sample(&self, now_ms: i64) {
        let now = [
            self.messages_in.load(Relaxed),
            self.bytes_in.load(Relaxed),
            self.messages_out.load(Relaxed),
            self.bytes_out.load(Relaxed),
        ];
        let mut last = self.last_sample.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, before)) = *last {
            let seconds = (now_ms - at) as f64 / 1000.0;
            if seconds <= 0.0 {
                return;
            }
            for i in 0..4 {
                let rate = now[i].saturating_sub(before[i]) as f64 / seconds;
                self.rates[i].store(rate.to_bits(), Relaxed);
            }
        }
        *last = Some((now_ms, now));
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let rate = |i: usize| f64::from_bits(self.rates[i].load(Relaxed));
        StatsSnapshot {
            entries_in: self.entries_in.load(Relaxed),
            messages_in: self.messages_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            messages_out: self.messages_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            producers: self.producers.load(Relaxed).max(0),
            consumers: self.consumers.load(Relaxed).max(0),
            rate_in: rate(0),
            throughput_in: rate(1),
            rate_out: rate(2),
            throughput_out: rate(3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_difference_between_samples() {
        let stats = LedgerStats::default();
        stats.sample(1_000);
        stats.appended(2, 10, 1000);
        stats.delivered(5, 500);
        stats.sample(3_000);
        let s = stats.snapshot();
        assert_eq!((s.messages_in, s.bytes_in, s.entries_in, s.messages_out, s.bytes_out), (10, 1000, 2, 5, 500));
        assert_eq!((s.rate_in, s.throughput_in, s.rate_out, s.throughput_out), (5.0, 500.0, 2.5, 250.0));
        stats.sample(4_000);
        assert_eq!(stats.snapshot().rate_in, 0.0);
    }

    #[test]
    fn cursor_owners_are_remembered_until_cleared() {
        let stats = LedgerStats::default();
        stats.set_cursor_owner("g1", "kafka");
        assert_eq!(stats.cursor_owner("g1").as_deref(), Some("kafka"));
        stats.clear_cursor_owner("g1");
        assert_eq!(stats.cursor_owner("g1"), None);
    }
}
