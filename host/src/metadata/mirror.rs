//! A prefix of etcd's key space kept in memory by a watch: what routing
//! reads on every lookup (live brokers, partition owners) without a round
//! trip. A mirror may lag etcd by the watch's delivery time; what must be
//! exact (a claim) is decided by an etcd transaction, never by a mirror.
//!
//! The task reads the prefix, then watches from the revision just after
//! that read, so no change falls between the two. A broken watch (etcd
//! restarted, a compaction, a network error) is resumed the same way: read
//! again, watch again.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use etcd_client::{Client, EventType, GetOptions, WatchOptions};

/// One mirrored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirrored {
    /// Its value.
    pub value: Vec<u8>,
    /// Its creation revision (an owner key's epoch).
    pub create_revision: i64,
    /// The lease it is bound to (0: none).
    pub lease: i64,
}

/// The keys under one prefix, as of the last event seen.
pub struct Mirror {
    prefix: String,
    entries: RwLock<BTreeMap<String, Mirrored>>,
    /// The etcd revision the entries are as of.
    revision: std::sync::atomic::AtomicI64,
    /// Counts changes (and becomes 1 at the first complete read).
    changed: tokio::sync::watch::Sender<u64>,
    /// Keys deleted, as the watch reports them.
    deleted: tokio::sync::broadcast::Sender<String>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror").field("prefix", &self.prefix).finish()
    }
}

/// How long a broken watch waits before it reads and watches again.
const RETRY: Duration = Duration::from_millis(250);

impl Mirror {
    /// Starts mirroring `prefix` over `client` (a task on the current runtime).
    pub fn start(client: Client, prefix: &str) -> Arc<Self> {
        let mirror = Arc::new(Self {
            prefix: prefix.to_owned(),
            entries: RwLock::new(BTreeMap::new()),
            revision: std::sync::atomic::AtomicI64::new(0),
            changed: tokio::sync::watch::Sender::new(0),
            deleted: tokio::sync::broadcast::Sender::new(1024),
        });
        tokio::spawn(run(client, Arc::downgrade(&mirror)));
        mirror
    }

    /// The key `key` (full path), if present.
    pub fn get(&self, key: &str) -> Option<Mirrored> {
        self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).cloned()
    }

    /// Every key and value, by key.
    pub fn all(&self) -> Vec<(String, Mirrored)> {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The etcd revision the mirror is as of: every change up to it is in.
    pub fn revision(&self) -> i64 {
        self.revision.load(std::sync::atomic::Ordering::Acquire)
    }

    fn advance(&self, revision: i64) {
        self.revision.fetch_max(revision, std::sync::atomic::Ordering::AcqRel);
    }

    /// A receiver that sees every change (and the first complete read).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A receiver of the keys deleted from now on (by a watch event; a key
    /// that vanishes while the watch is broken is not reported).
    pub fn deletions(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.deleted.subscribe()
    }

    /// Waits until the first read is in (at most `timeout`).
    pub async fn ready(&self, timeout: Duration) -> bool {
        let mut changed = self.subscribe();
        tokio::time::timeout(timeout, changed.wait_for(|n| *n > 0)).await.is_ok_and(|r| r.is_ok())
    }

    fn replace(&self, entries: BTreeMap<String, Mirrored>, revision: i64) {
        *self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner) = entries;
        self.advance(revision);
        self.changed.send_modify(|n| *n += 1);
    }

    fn apply(&self, key: String, entry: Option<Mirrored>) {
        let deleted = {
            let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            match entry {
                Some(e) => {
                    entries.insert(key, e);
                    None
                }
                None => entries.remove(&key).map(|_| key),
            }
        };
        if let Some(key) = deleted {
            // No receiver is not an error: nobody listens.
            let _ = self.deleted.send(key);
        }
        self.changed.send_modify(|n| *n += 1);
    }
}

fn mirrored(kv: &etcd_client::KeyValue) -> Option<(String, Mirrored)> {
    let key = kv.key_str().ok()?.to_owned();
    Some((key, Mirrored { value: kv.value().to_vec(), create_revision: kv.create_revision(), lease: kv.lease() }))
}

/// Reads and watches until the mirror is dropped.
async fn run(mut client: Client, mirror: std::sync::Weak<Mirror>) {
    let mut warned = false;
    loop {
        let Some(prefix) = mirror.upgrade().map(|m| m.prefix.clone()) else { return };
        let result: Result<(), etcd_client::Error> = async {
            let read = client.get(prefix.as_str(), Some(GetOptions::new().with_prefix())).await?;
            let revision = read.header().map_or(0, |h| h.revision());
            let Some(m) = mirror.upgrade() else { return Ok(()) };
            m.replace(read.kvs().iter().filter_map(mirrored).collect(), revision);
            drop(m);
            let options = WatchOptions::new().with_prefix().with_start_revision(revision + 1);
            let mut stream = client.watch(prefix.as_str(), Some(options)).await?;
            if warned {
                tracing::info!(prefix = %prefix, "metadata watch resumed");
                warned = false;
            }
            while let Some(response) = stream.message().await? {
                if response.canceled() {
                    // A compaction passed our revision: read everything again.
                    return Ok(());
                }
                let Some(m) = mirror.upgrade() else { return Ok(()) };
                for event in response.events() {
                    let Some((key, entry)) = event.kv().and_then(mirrored) else { continue };
                    match event.event_type() {
                        EventType::Put => m.apply(key, Some(entry)),
                        EventType::Delete => m.apply(key, None),
                    }
                }
                if let Some(header) = response.header() {
                    m.advance(header.revision());
                }
            }
            Ok(())
        }
        .await;
        if mirror.strong_count() == 0 {
            return;
        }
        if let Err(e) = result {
            if !warned {
                tracing::warn!(prefix = %prefix, error = %e, "metadata watch broken; reading again");
                warned = true;
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}
