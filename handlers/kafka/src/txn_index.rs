//! Each partition's transactions as readers need them: the open
//! transactions (producer id → first offset), whose earliest first offset is
//! the partition's last stable offset (LSO), and the index of aborted
//! transactions (producer id, first offset, marker offset) that a
//! read_committed Fetch lists so that clients drop those records.
//!
//! Written by hand: this is Kafka's producer-state and `.txnindex` for this
//! broker's ledgers, the core of read_committed.
//!
//! Kept in memory and rebuilt from the log once per partition and process
//! ([`TxnIndex::load_once`]) before anything reads or changes it. Only
//! topics that ever held a transactional batch are scanned: Produce marks a
//! topic with the property [`MARK`] before its first transactional batch is
//! stored, so a topic without the mark has no transaction in its log (and
//! the scan reads the whole log of a marked one, from its start: an aborted
//! transaction whose first records retention deleted starts at the log
//! start). The index therefore holds what the log holds, through restarts,
//! retention and DeleteRecords.
//!
//! Produce registers a transaction before its first batch's append is
//! placed, at a lower bound of its first offset (the partition's end when
//! the batch was prepared), then the exact offset once the append
//! completes: a reader never sees a record of an open transaction as
//! stable, even while the append is in flight.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
};

use polyport_handler_api::{
    convert::ReadFence,
    storage::{OpenOptions, ReadRequest},
    ErrorKind, HandlerError, Host, Partition,
};

use crate::records::{self, TxnKind, FORMAT_KAFKA};

/// The topic property that says a topic has held transactional batches.
pub const MARK: &str = "polyport.kafka.transactions";

/// An aborted transaction of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted {
    /// The producer.
    pub producer_id: i64,
    /// The offset of its first record in the partition.
    pub first: u64,
    /// The offset of its ABORT marker.
    pub last: u64,
}

#[derive(Debug, Default)]
struct Txns {
    /// Open transactions: producer id → (first offset, exact). Not exact:
    /// a lower bound, until the first append completes.
    open: HashMap<i64, (u64, bool)>,
    /// Aborted transactions in marker order (so by `last`).
    aborted: Vec<Aborted>,
}

impl Txns {
    fn begin(&mut self, producer_id: i64, floor: u64) {
        self.open.entry(producer_id).or_insert((floor, false));
    }

    fn appended(&mut self, producer_id: i64, offset: u64) {
        if let Some(open) = self.open.get_mut(&producer_id) {
            if !open.1 {
                *open = (offset.max(open.0), true);
            }
        }
    }

    fn marker(&mut self, producer_id: i64, commit: bool, offset: u64) {
        // A marker for a producer without an open transaction here (its
        // records deleted, or none written) aborts nothing readers keep.
        let first = self.open.remove(&producer_id).map_or(offset, |(first, _)| first);
        if !commit && first < offset {
            self.aborted.push(Aborted { producer_id, first, last: offset });
        }
    }
}

/// Every partition's transactions.
#[derive(Debug, Default)]
pub struct TxnIndex {
    parts: Mutex<HashMap<String, Txns>>,
    loaded: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<()>>>>,
    /// Topics known to carry the [`MARK`].
    marked: Mutex<HashSet<String>>,
}

impl TxnIndex {
    fn with<T>(&self, ledger: &str, f: impl FnOnce(&mut Txns) -> T) -> T {
        let mut parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        match parts.get_mut(ledger) {
            Some(t) => f(t),
            None => f(parts.entry(ledger.to_owned()).or_default()),
        }
    }

    /// Rebuilds `ledger`'s transactions from its log, once per process,
    /// before any other call about it: callers await it first (later calls
    /// return at once). A failed read leaves it to load again. `marked`:
    /// whether the topic's properties, as the caller resolved them, carry
    /// the [`MARK`] (`None`: read them now). The topic mapper's cached
    /// properties serve every Kafka request, so a read keeps working while
    /// the metadata store is away.
    pub async fn load_once(
        &self,
        host: &Host,
        topic: &str,
        ledger: &str,
        log: &Partition,
        marked: Option<bool>,
    ) -> Result<(), HandlerError> {
        let cell = {
            let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
            match loaded.get(ledger) {
                Some(cell) => Arc::clone(cell),
                None => Arc::clone(loaded.entry(ledger.to_owned()).or_default()),
            }
        };
        cell.get_or_try_init(|| async {
            let marked = match marked {
                Some(true) => true,
                // Marked by this process since the caller's properties were read.
                Some(false) => self.marked.lock().unwrap_or_else(PoisonError::into_inner).contains(topic),
                None => self.is_marked(host, topic).await?,
            };
            if !marked {
                return Ok(());
            }
            let txns = scan(log).await?;
            tracing::info!(
                partition = ledger,
                open = txns.open.len(),
                aborted = txns.aborted.len(),
                "transactions rebuilt from the log"
            );
            self.parts.lock().unwrap_or_else(PoisonError::into_inner).insert(ledger.to_owned(), txns);
            Ok(())
        })
        .await
        .map(|_| ())
    }

    async fn is_marked(&self, host: &Host, topic: &str) -> Result<bool, HandlerError> {
        if self.marked.lock().unwrap_or_else(PoisonError::into_inner).contains(topic) {
            return Ok(true);
        }
        let marked = match host.topic_properties(topic).await {
            Ok(properties) => properties.iter().any(|(k, _)| k == MARK),
            Err(e) if e.kind() == ErrorKind::NOT_FOUND => false,
            Err(e) => return Err(e),
        };
        if marked {
            self.marked.lock().unwrap_or_else(PoisonError::into_inner).insert(topic.to_owned());
        }
        Ok(marked)
    }

    /// Marks `topic` as holding transactions (once per process), before its
    /// first transactional batch is stored.
    pub async fn mark(&self, host: &Host, topic: &str) -> Result<(), HandlerError> {
        if self.is_marked(host, topic).await? {
            return Ok(());
        }
        host.update_topic_properties(topic, vec![(MARK.to_owned(), Some("true".to_owned()))]).await?;
        self.marked.lock().unwrap_or_else(PoisonError::into_inner).insert(topic.to_owned());
        Ok(())
    }

    /// A transactional batch of `producer_id` is about to be appended at or
    /// after `floor`.
    pub fn begin(&self, ledger: &str, producer_id: i64, floor: u64) {
        self.with(ledger, |t| t.begin(producer_id, floor));
    }

    /// A transactional batch of `producer_id` was stored at `offset`.
    pub fn appended(&self, ledger: &str, producer_id: i64, offset: u64) {
        self.with(ledger, |t| t.appended(producer_id, offset));
    }

    /// `producer_id`'s marker was stored at `offset`: its transaction ends.
    pub fn marker(&self, ledger: &str, producer_id: i64, commit: bool, offset: u64) {
        self.with(ledger, |t| t.marker(producer_id, commit, offset));
    }

    /// The last stable offset: the first offset of the earliest open
    /// transaction, else the high watermark.
    pub fn last_stable(&self, ledger: &str, high_watermark: u64) -> u64 {
        let parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        parts
            .get(ledger)
            .and_then(|t| t.open.values().map(|(first, _)| *first).min())
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// The aborted transactions with records in `[from, to)`; those wholly
    /// before `log_start` are forgotten on the way.
    pub fn aborted(&self, ledger: &str, from: u64, to: u64, log_start: u64) -> Vec<Aborted> {
        let mut parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(t) = parts.get_mut(ledger) else { return Vec::new() };
        let gone = t.aborted.iter().take_while(|a| a.last < log_start).count();
        if gone > 0 {
            t.aborted.drain(..gone);
        }
        t.aborted.iter().filter(|a| a.last >= from && a.first < to).copied().collect()
    }

    /// Whether `ledger`'s transactions are loaded.
    pub fn is_loaded(&self, ledger: &str) -> bool {
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner).get(ledger).is_some_and(|c| c.initialized())
    }

    /// Whether the record at `offset` belongs to an aborted transaction of `producer_id`.
    pub fn is_aborted(&self, ledger: &str, producer_id: i64, offset: u64) -> bool {
        let parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        parts.get(ledger).is_some_and(|t| {
            t.aborted.iter().any(|a| a.producer_id == producer_id && a.first <= offset && offset <= a.last)
        })
    }

    /// Forgets a deleted topic's partitions and mark, so that a topic
    /// created again under its name starts without its transactions.
    pub fn forget_topic(&self, topic: &str) {
        let partition_prefix = format!("{topic}-partition-");
        let other = |ledger: &String| ledger != topic && !ledger.starts_with(&partition_prefix);
        self.parts.lock().unwrap_or_else(PoisonError::into_inner).retain(|ledger, _| other(ledger));
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner).retain(|ledger, _| other(ledger));
        self.marked.lock().unwrap_or_else(PoisonError::into_inner).remove(topic);
    }
}

/// What readers of other protocols (Pulsar consumers) may see of a
/// partition: up to its last stable offset, without the aborted
/// transactions' records nor the markers ([`ReadFence`], handler-api 0.2.4).
/// A partition whose transactions are not loaded yet holds readers at its
/// start while a task loads them.
#[derive(Debug)]
pub struct Fence {
    index: Arc<TxnIndex>,
    host: Host,
    /// Partitions whose load is under way.
    loading: Arc<Mutex<HashSet<String>>>,
}

impl Fence {
    /// The fence over `index`.
    pub fn new(index: Arc<TxnIndex>, host: Host) -> Self {
        Self { index, host, loading: Arc::default() }
    }

    fn load_in_background(&self, ledger: &str) {
        if !self.loading.lock().unwrap_or_else(PoisonError::into_inner).insert(ledger.to_owned()) {
            return;
        }
        let (index, host, ledger) = (Arc::clone(&self.index), self.host.clone(), ledger.to_owned());
        let loading = Arc::clone(&self.loading);
        self.host.spawn("kafka-txn-index-load", async move {
            // The topic of a partition ledger is its name without `-partition-N`.
            let topic = match ledger.rsplit_once("-partition-") {
                Some((topic, n)) if n.parse::<u32>().is_ok() => topic.to_owned(),
                _ => ledger.clone(),
            };
            let loaded = async {
                let log = host.open_partition(&ledger, OpenOptions::default()).await?;
                index.load_once(&host, &topic, &ledger, &log, None).await
            };
            if let Err(e) = loaded.await {
                tracing::warn!(partition = %ledger, error = %e, "transactions not loaded for Pulsar readers; retried at their next read");
            }
            // Loaded (seen by `is_loaded` from now on) or to be tried again.
            loading.lock().unwrap_or_else(PoisonError::into_inner).remove(&ledger);
        });
    }
}

impl ReadFence for Fence {
    fn stable_end(&self, ledger: &str, end: u64) -> u64 {
        if self.index.is_loaded(ledger) {
            return self.index.last_stable(ledger, end);
        }
        self.load_in_background(ledger);
        0
    }

    fn hidden(&self, ledger: &str, format: u16, offset: u64, payload: &[u8]) -> bool {
        if format != FORMAT_KAFKA {
            return false;
        }
        match records::txn_kind(payload) {
            TxnKind::Plain => false,
            TxnKind::Marker(..) => true,
            TxnKind::Data(producer_id) => self.index.is_aborted(ledger, producer_id, offset),
        }
    }
}

/// Reads a whole log for its transactions.
async fn scan(log: &Partition) -> Result<Txns, HandlerError> {
    let mut txns = Txns::default();
    let range = log.range().await?;
    let mut offset = range.start;
    while offset < range.end {
        let request = ReadRequest { offset, max_entries: 4096, max_bytes: 8 << 20, wait_ms: 0 };
        let read = match log.read(request).await {
            Ok(read) => read,
            // Retention moved the start meanwhile: go on from there.
            Err(e) if e.kind() == ErrorKind::OUT_OF_RANGE => {
                let now = log.range().await?;
                if now.start <= offset {
                    return Err(e);
                }
                offset = now.start;
                continue;
            }
            Err(e) => return Err(e),
        };
        if read.entries.is_empty() {
            break;
        }
        for entry in &read.entries {
            let base = entry.meta.base_offset;
            offset = base + u64::from(entry.meta.count.max(1));
            if entry.meta.format != FORMAT_KAFKA {
                continue;
            }
            match records::txn_kind(&entry.payload) {
                TxnKind::Plain => {}
                TxnKind::Data(producer_id) => {
                    txns.begin(producer_id, base);
                    txns.appended(producer_id, base);
                }
                TxnKind::Marker(producer_id, commit) => txns.marker(producer_id, commit, base),
            }
        }
    }
    Ok(txns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_stable_offset_and_aborted_ranges_follow_the_markers() {
        let index = TxnIndex::default();
        let l = "p";
        assert_eq!(index.last_stable(l, 10), 10);
        // Producer 7 prepared at end 10, stored at 12; producer 8 at 15.
        index.begin(l, 7, 10);
        assert_eq!(index.last_stable(l, 12), 10, "a lower bound while the append is in flight");
        index.appended(l, 7, 12);
        index.begin(l, 8, 14);
        index.appended(l, 8, 15);
        index.begin(l, 7, 16);
        index.appended(l, 7, 16);
        assert_eq!(index.last_stable(l, 20), 12);
        index.marker(l, 7, false, 20);
        assert_eq!(index.last_stable(l, 21), 15);
        index.marker(l, 8, true, 21);
        assert_eq!(index.last_stable(l, 22), 22);
        assert_eq!(index.aborted(l, 0, 22, 0), vec![Aborted { producer_id: 7, first: 12, last: 20 }]);
        assert_eq!(index.aborted(l, 21, 22, 0), vec![], "the range is over before 21");
        assert_eq!(index.aborted(l, 0, 12, 0), vec![], "and starts at 12");
        assert_eq!(index.aborted(l, 0, 22, 21), vec![], "deleted by retention");
        // A deleted topic's partitions start over.
        index.begin("t-partition-0", 9, 3);
        index.forget_topic("t");
        assert_eq!(index.last_stable("t-partition-0", 10), 10);
        assert_eq!(index.last_stable(l, 22), 22, "another topic keeps its state");
    }
}
