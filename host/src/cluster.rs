//! The cluster as one broker sees it: which brokers are alive, who owns
//! each partition, where an unowned one should go, and whether this broker
//! may serve a partition now. Present only with a shared metadata store
//! (`metadataStoreUrl=etcd:...`); a standalone broker owns everything.
//!
//! - **Live brokers** and **owners** are mirrors of `/loadbalance/brokers`
//!   and `/loadbalance/owners` ([`Mirror`]): lookups read memory.
//! - **Placement** of an unowned partition picks, among the live brokers
//!   (and this one, which registers only once its listeners are bound),
//!   the one with the fewest partitions of the same topic, then the fewest
//!   in all, then by rendezvous hashing: a topic spreads evenly, and brokers
//!   with the same view propose the same owner. A proposal is not ownership: the broker proposed claims the
//!   partition when a client first uses it there ([`Cluster::acquire`]),
//!   in one etcd transaction, so two brokers never both own it, whatever
//!   their views.
//! - **Serving** needs both: this broker's claim, and its session fresh
//!   (the fence of [`Ownership::may_acknowledge`]). A claim lost with the
//!   session is dropped from this broker's claims when the owners mirror
//!   sees the key go, or the session is found expired.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use crate::{
    metadata::{EtcdStore, MetadataError, Mirror},
    ownership::{Claimed, Ownership, OWNERS_PATH},
    registry::{BrokerData, BROKERS_PATH},
    topics::TopicName,
};

/// A broker of the cluster, as routing needs it.
#[derive(Debug, Clone)]
pub struct Broker {
    /// Its id, `advertisedAddress:webServicePort`.
    pub id: String,
    /// Its number for protocols that number brokers (Kafka's node id).
    pub node_id: i32,
    /// Whether it is this broker.
    pub local: bool,
    /// What it registered (None for this broker before it registered).
    pub data: Option<BrokerData>,
}

/// Where a partition is served.
#[derive(Debug, Clone)]
pub enum Route {
    /// Here: this broker owns it now.
    Local,
    /// At another broker (its owner, or the one placement proposes).
    Remote(Broker),
}

/// Why this broker cannot serve a partition.
#[derive(Debug, thiserror::Error)]
pub enum NotServed {
    /// Another broker owns it.
    #[error("{partition} is owned by broker {owner}; look it up again")]
    Elsewhere {
        /// The partition.
        partition: String,
        /// Its owner's id.
        owner: String,
    },
    /// No broker owns it (yet): the first broker a client uses it at claims it.
    #[error("{partition} is not owned by any broker yet; look it up again")]
    Unowned {
        /// The partition.
        partition: String,
    },
    /// This broker's session may have expired: it serves nothing until it
    /// is renewed.
    #[error("{partition}: this broker's metadata session is not current; it serves nothing until etcd answers")]
    Fenced {
        /// The partition.
        partition: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] MetadataError),
}

/// This broker's view of the cluster.
pub struct Cluster {
    store: Arc<EtcdStore>,
    me: String,
    ownership: Ownership,
    brokers: Arc<Mirror>,
    owners: Arc<Mirror>,
    /// `/admin/topics/`, for the deletions other brokers make.
    topics: Arc<Mirror>,
    /// The partitions this broker claimed in this session, with their epochs.
    owned: Mutex<HashMap<TopicName, i64>>,
    /// Recent placement proposals not yet claimed: partition → (broker id, when).
    proposals: Mutex<HashMap<TopicName, (String, std::time::Instant)>>,
    /// Partitions whose claim this broker lost (not those it gave up).
    lost: tokio::sync::broadcast::Sender<TopicName>,
    /// At a graceful stop with tiering: the partitions being handed over,
    /// whose appends already queued are still acknowledged (they are in
    /// the segment uploaded before the handover; see `stop_serving`).
    draining: Mutex<HashMap<TopicName, i64>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("me", &self.me).finish()
    }
}

/// A stable node id for broker `id`: the same on every broker, positive
/// (Kafka reserves negative ids), and not 0, the standalone broker's.
pub fn node_id(id: &str) -> i32 {
    let n = i32::try_from(mix(fnv1a(&[id.as_bytes()])) & 0x7fff_fffe).unwrap_or(1);
    n.max(1)
}

/// FNV-1a (64 bits) over `parts`, each followed by a 0 byte. Written out
/// rather than taken from std, whose hasher may change between Rust
/// releases: every broker of a cluster, whatever it was built with, must
/// compute the same numbers. (A CRC would not do: it is linear, so two
/// brokers' scores would differ by the same bits for every partition.)
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&[0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// splitmix64's finalizer: spreads every input bit over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rendezvous score of `broker` for `partition`: the highest wins.
fn score(broker: &str, partition: &str) -> u64 {
    mix(fnv1a(&[broker.as_bytes(), partition.as_bytes()]))
}

/// The broker id in an owner key's value.
fn owner_of(value: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Value {
        broker: String,
    }
    serde_json::from_slice::<Value>(value).ok().map(|v| v.broker)
}

/// How long a placement proposal is kept (answered again) unclaimed.
const PROPOSAL_KEPT: Duration = Duration::from_secs(30);

/// How long start-up waits for the mirrors' first read.
const MIRROR_READY: Duration = Duration::from_secs(5);

impl Cluster {
    /// The cluster over `store`'s session, for broker `me`; waits for the
    /// first read of its mirrors.
    pub async fn start(store: Arc<EtcdStore>, me: String) -> Arc<Self> {
        let brokers = store.mirror(&format!("{BROKERS_PATH}/"));
        let owners = store.mirror(&format!("{OWNERS_PATH}/"));
        let topics = store.mirror("/admin/topics/");
        if !(brokers.ready(MIRROR_READY).await && owners.ready(MIRROR_READY).await) {
            tracing::warn!("the broker and owner mirrors are not read yet; lookups will see fewer brokers at first");
        }
        let cluster = Arc::new(Self {
            ownership: Ownership::new(Arc::clone(&store), me.clone()),
            store,
            me,
            brokers,
            owners,
            topics,
            owned: Mutex::new(HashMap::new()),
            proposals: Mutex::new(HashMap::new()),
            lost: tokio::sync::broadcast::channel(1024).0,
            draining: Mutex::new(HashMap::new()),
        });
        tokio::spawn(watch_own_claims(Arc::downgrade(&cluster)));
        cluster
    }

    /// This broker's id.
    pub fn id(&self) -> &str {
        &self.me
    }

    /// The live brokers, this one included, by id.
    pub fn brokers(&self) -> Vec<Broker> {
        let mut out: Vec<Broker> = self
            .brokers
            .all()
            .into_iter()
            .filter_map(|(key, entry)| {
                let id = key.strip_prefix(BROKERS_PATH)?.trim_start_matches('/').to_owned();
                let data = serde_json::from_slice::<BrokerData>(&entry.value).ok();
                Some(Broker { node_id: node_id(&id), local: id == self.me, id, data })
            })
            .collect();
        if !out.iter().any(|b| b.local) {
            out.push(Broker { id: self.me.clone(), node_id: node_id(&self.me), local: true, data: None });
            out.sort_by(|a, b| a.id.cmp(&b.id));
        }
        out
    }

    /// Broker `id`, with its registration if the mirror has it.
    pub fn broker(&self, id: &str) -> Broker {
        let data = self
            .brokers
            .get(&format!("{BROKERS_PATH}/{id}"))
            .and_then(|e| serde_json::from_slice::<BrokerData>(&e.value).ok());
        Broker { id: id.to_owned(), node_id: node_id(id), local: id == self.me, data }
    }

    fn owner_key(partition: &TopicName) -> String {
        format!("{OWNERS_PATH}/{}/{}/{}", partition.tenant, partition.namespace, partition.file_name())
    }

    /// The owner of `partition` as the mirror has it.
    fn mirrored_owner(&self, partition: &TopicName) -> Option<String> {
        owner_of(&self.owners.get(&Self::owner_key(partition))?.value)
    }

    /// The broker placement proposes for `partition`: the live broker that
    /// owns (or was proposed) the fewest partitions of the same topic, then
    /// the fewest in all, then the highest rendezvous score. A topic's
    /// partitions so spread evenly over the brokers, and a proposal is kept
    /// for a while, so that repeated lookups give the same answer until the
    /// broker proposed claims the partition.
    fn place(&self, partition: &TopicName) -> Broker {
        let now = std::time::Instant::now();
        let brokers = self.brokers();
        let owners = self.owners.all();
        let owned_keys: std::collections::HashSet<&str> = owners.iter().map(|(k, _)| k.as_str()).collect();
        let mut proposals = self.proposals.lock().unwrap_or_else(PoisonError::into_inner);
        // A proposal lapses with time, once its partition is claimed, and
        // when its broker is gone.
        proposals.retain(|p, (id, at)| {
            now.duration_since(*at) < PROPOSAL_KEPT
                && !owned_keys.contains(Self::owner_key(p).as_str())
                && brokers.iter().any(|b| &b.id == id)
        });
        if let Some((id, _)) = proposals.get(partition) {
            return self.broker(id);
        }
        let base_key = Self::owner_key(&partition.base());
        let same_topic = |key: &str| {
            key == base_key
                || key
                    .strip_prefix(base_key.as_str())
                    .and_then(|rest| rest.strip_prefix("-partition-"))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        // (partitions of this topic, partitions in all) per broker id.
        let mut load: HashMap<String, (usize, usize)> = HashMap::new();
        let mut count = |id: &str, key: &str| {
            let l = load.entry(id.to_owned()).or_default();
            l.1 += 1;
            if same_topic(key) {
                l.0 += 1;
            }
        };
        for (key, entry) in &owners {
            if let Some(owner) = owner_of(&entry.value) {
                count(&owner, key);
            }
        }
        for (proposed, (id, _)) in proposals.iter() {
            count(id, &Self::owner_key(proposed));
        }
        let name = partition.to_string();
        let chosen = brokers
            .into_iter()
            .min_by_key(|b| {
                let (topic, all) = load.get(&b.id).copied().unwrap_or_default();
                (topic, all, std::cmp::Reverse(score(&b.id, &name)))
            })
            .unwrap_or_else(|| self.broker(&self.me));
        proposals.insert(partition.clone(), (chosen.id.clone(), now));
        chosen
    }

    /// Where `partition` is served: its owner; if it has none, the broker
    /// placement proposes, which claims it now if it is this one.
    pub async fn route(&self, partition: &TopicName) -> Result<Route, MetadataError> {
        if self.serves(partition) {
            return Ok(Route::Local);
        }
        let owner = match self.mirrored_owner(partition) {
            Some(owner) => owner,
            None => {
                let proposed = self.place(partition);
                if !proposed.local {
                    return Ok(Route::Remote(proposed));
                }
                match self.claim(partition).await? {
                    Claimed::Mine(_) => return Ok(Route::Local),
                    Claimed::Theirs(owner) => owner.broker,
                }
            }
        };
        if owner == self.me {
            // A claim of this broker's previous run, or one the mirror
            // shows before `owned` does: settled by a claim.
            return Ok(match self.claim(partition).await? {
                Claimed::Mine(_) => Route::Local,
                Claimed::Theirs(owner) => Route::Remote(self.broker(&owner.broker)),
            });
        }
        Ok(Route::Remote(self.broker(&owner)))
    }

    async fn claim(&self, partition: &TopicName) -> Result<Claimed, MetadataError> {
        let claimed = self.ownership.claim(partition).await?;
        if let Claimed::Mine(owner) = &claimed {
            let new = self.lock().insert(partition.clone(), owner.epoch).is_none();
            if new {
                tracing::info!(partition = %partition, epoch = owner.epoch, "partition owned");
            }
        }
        Ok(claimed)
    }

    /// Makes this broker the owner of `partition` before it serves it (a
    /// client's first use here): claimed if no one owns it, refused if
    /// another broker does, whatever placement proposes.
    pub async fn acquire(&self, partition: &TopicName) -> Result<(), NotServed> {
        if self.serves(partition) {
            return Ok(());
        }
        if !self.ownership.may_acknowledge() {
            return Err(NotServed::Fenced { partition: partition.to_string() });
        }
        match self.claim(partition).await? {
            Claimed::Mine(_) => Ok(()),
            Claimed::Theirs(owner) => {
                Err(NotServed::Elsewhere { partition: partition.to_string(), owner: owner.broker })
            }
        }
    }

    /// [`route`](Self::route) for a lookup that arrived by a redirect
    /// (Pulsar's `authoritative`): an unowned partition is claimed here,
    /// whatever placement proposes, so redirects end.
    pub async fn route_claiming(&self, partition: &TopicName) -> Result<Route, NotServed> {
        match self.acquire(partition).await {
            Ok(()) => Ok(Route::Local),
            Err(NotServed::Elsewhere { owner, .. }) => Ok(Route::Remote(self.broker(&owner))),
            Err(e) => Err(e),
        }
    }

    /// The partition count of topic `name` as the topics mirror has it
    /// (0: non-partitioned); None if the mirror does not show the topic.
    pub fn mirrored_partitions(&self, name: &TopicName) -> Option<u32> {
        let entry = self.topics.get(&crate::topics::topic_key(name))?;
        serde_json::from_slice::<crate::topics::TopicRecord>(&entry.value).ok().map(|r| r.partitions)
    }

    /// Whether this broker may serve `partition` now: it owns it and its
    /// session is fresh (the fence, checked before and after each append).
    pub fn serves(&self, partition: &TopicName) -> bool {
        self.ownership.may_acknowledge() && self.lock().contains_key(partition)
    }

    /// [`serves`](Self::serves), as the error to answer when it does not.
    pub fn check(&self, partition: &TopicName) -> Result<(), NotServed> {
        if !self.ownership.may_acknowledge() {
            return Err(NotServed::Fenced { partition: partition.to_string() });
        }
        if self.lock().contains_key(partition) {
            return Ok(());
        }
        Err(match self.mirrored_owner(partition) {
            Some(owner) => NotServed::Elsewhere { partition: partition.to_string(), owner },
            None => NotServed::Unowned { partition: partition.to_string() },
        })
    }

    /// The topic keys (`/admin/topics/<tenant>/<ns>/<topic>`) deleted from
    /// now on, by any broker.
    pub fn topic_deletions(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.topics.deletions()
    }

    /// Gives up `partition` if this broker owns it (its topic was deleted).
    pub async fn release(&self, partition: &TopicName) {
        let epoch = self.lock().remove(partition);
        if let Some(epoch) = epoch {
            if let Err(e) = self.ownership.release(partition, epoch).await {
                tracing::warn!(partition = %partition, error = %e, "ownership not released; it ends with the session");
            }
        }
    }

    /// Stops serving every partition at once (a graceful stop): appends
    /// are refused from now on. Ending the session then deletes the owner
    /// keys in one step, and the other brokers claim them.
    ///
    /// With `handover` (tiering on: the broker uploads everything before its
    /// session ends), appends already queued when it stopped are still
    /// acknowledged ([`acknowledges`](Self::acknowledges)) until
    /// [`end_handover`](Self::end_handover): they are stored before the
    /// final roll, so the next owner has them; refusing them would make
    /// their producers send them again, as duplicates.
    pub fn stop_serving(&self, handover: bool) {
        let owned = std::mem::take(&mut *self.lock());
        tracing::info!(partitions = owned.len(), "releasing every partition this broker owns");
        if handover {
            *self.draining.lock().unwrap_or_else(PoisonError::into_inner) = owned;
        }
    }

    /// Ends what `stop_serving(true)` began: nothing is acknowledged any more.
    pub fn end_handover(&self) {
        self.draining.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Whether an append that was stored may be acknowledged: the partition
    /// is served, or being handed over with what was stored.
    pub fn acknowledges(&self, partition: &TopicName) -> bool {
        self.serves(partition)
            || (self.ownership.may_acknowledge()
                && self.draining.lock().unwrap_or_else(PoisonError::into_inner).contains_key(partition))
    }

    /// [`acknowledges`](Self::acknowledges), as the error to answer when it does not.
    pub fn check_acknowledge(&self, partition: &TopicName) -> Result<(), NotServed> {
        if self.acknowledges(partition) {
            return Ok(());
        }
        self.check(partition)
    }

    /// The ownership epoch of `partition`, if this broker owns it.
    pub fn epoch(&self, partition: &TopicName) -> Option<i64> {
        self.lock().get(partition).copied()
    }

    /// The partitions this broker loses from now on (its claim expired with
    /// the session, or was taken): their ledgers close.
    pub fn losses(&self) -> tokio::sync::broadcast::Receiver<TopicName> {
        self.lost.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TopicName, i64>> {
        self.owned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops claims the owners mirror no longer shows as this session's
    /// (expired with the lease, or released), and all of them once the
    /// session is known to be gone.
    fn reconcile(&self) {
        let alive = self.store.session_alive();
        let lease = self.store.lease();
        let seen = self.owners.revision();
        let mut owned = self.lock();
        owned.retain(|partition, epoch| {
            // A claim newer than the mirror is not in it yet.
            if alive && seen < *epoch {
                return true;
            }
            let entry = self.owners.get(&Self::owner_key(partition));
            let kept = alive && entry.is_some_and(|e| e.lease == lease && e.create_revision == *epoch);
            if !kept {
                tracing::warn!(partition = %partition, epoch = *epoch, "partition no longer owned");
                let _ = self.lost.send(partition.clone());
            }
            kept
        });
    }
}

/// Follows the owners mirror (and the session) to drop lost claims.
async fn watch_own_claims(cluster: std::sync::Weak<Cluster>) {
    let Some(mut changed) = cluster.upgrade().map(|c| c.owners.subscribe()) else { return };
    loop {
        // A change of owners, or every second (the session's state has no event).
        let _ = tokio::time::timeout(Duration::from_secs(1), changed.changed()).await;
        let Some(cluster) = cluster.upgrade() else { return };
        cluster.reconcile();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_positive_and_not_the_standalone_id() {
        assert_eq!(node_id("127.0.0.1:8080"), node_id("127.0.0.1:8080"));
        assert_ne!(node_id("127.0.0.1:8080"), node_id("127.0.0.1:8081"));
        for port in 0..1000 {
            assert!(node_id(&format!("10.0.0.1:{port}")) > 0);
        }
    }

    #[test]
    fn the_rendezvous_tie_break_spreads_partitions_and_moves_only_a_leavers() {
        let brokers = ["127.0.0.1:18080", "127.0.0.1:18081", "127.0.0.1:18082"];
        fn place<'a>(set: &[&'a str], p: &str) -> &'a str {
            set.iter().copied().max_by_key(|b| (score(b, p), b.to_string())).expect("brokers")
        }
        let parts: Vec<String> = (0..120).map(|i| format!("persistent://public/default/t-partition-{i}")).collect();
        let mut counts = HashMap::new();
        for p in &parts {
            *counts.entry(place(&brokers, p)).or_insert(0) += 1;
        }
        for b in brokers {
            assert!(counts[b] >= 25, "{counts:?}");
        }

        // Without the third broker, only its partitions move.
        for p in &parts {
            let before = place(&brokers, p);
            if before != brokers[2] {
                assert_eq!(place(&brokers[..2], p), before);
            }
        }
    }
}
