//! Topics: names, metadata (partition counts, policies), auto-creation, and
//! the managed ledger of every partition, opened on first use.

mod name;
mod retention;
pub mod tenants;
pub mod users;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

pub use name::{InvalidName, TopicName};
use polyport_ledger::{backend::Backend, LedgerConfig, LedgerError, ManagedLedger};
pub use retention::RetentionPolicy;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::metadata::{Expect, MetadataError, MetadataStore};

/// Storage settings from broker.conf.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// How ledgers store data.
    pub ledger: LedgerConfig,
    /// `allowAutoTopicCreation`.
    pub auto_create: bool,
    /// `allowAutoTopicCreationType=partitioned`.
    pub auto_create_partitioned: bool,
    /// `defaultNumPartitions`.
    pub default_partitions: u32,
    /// Broker-wide retention defaults.
    pub retention: RetentionPolicy,
    /// `retentionCheckIntervalInSeconds`.
    pub retention_check_interval: Duration,
    /// `managedLedgerCacheSizeMB`, in bytes: memory for recently written data.
    pub cache_bytes: u64,
    /// `managedLedgerDirectIo`: segments written with `O_DIRECT`.
    pub direct_io: bool,
}

/// Per-namespace or per-topic policies; unset fields fall back to the next level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policies {
    /// Keep consumed data this long (-1: forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_time_in_minutes: Option<i64>,
    /// Keep at most this much data (-1: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "retentionSizeInMB")]
    pub retention_size_in_mb: Option<i64>,
    /// Acknowledge messages older than this for every cursor (0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_ttl_in_seconds: Option<i64>,
    /// Retention time in ms (Kafka's `retention.ms`); takes precedence over minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<i64>,
    /// Retention size in bytes (Kafka's `retention.bytes`); takes precedence over MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<i64>,
    /// Who may produce and consume (namespace policies only).
    #[serde(default, rename = "auth_policies", skip_serializing_if = "tenants::AuthPolicies::is_empty")]
    pub auth_policies: tenants::AuthPolicies,
    /// The namespace's own auto-creation rules (Pulsar's `autoTopicCreationOverride`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_topic_creation_override: Option<AutoTopicCreation>,
}

/// A namespace's auto-creation rules, as Pulsar's admin API writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoTopicCreation {
    /// Whether topics are created at their first use.
    pub allow_auto_topic_creation: bool,
    /// `partitioned` or `non-partitioned`.
    #[serde(default = "non_partitioned")]
    pub topic_type: String,
    /// Partitions of a partitioned topic created so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_num_partitions: Option<u32>,
}

fn non_partitioned() -> String {
    "non-partitioned".to_owned()
}

/// A topic's stored metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRecord {
    /// 0 for a non-partitioned topic.
    pub partitions: u32,
    /// Creation time, Unix ms.
    pub created_ms: i64,
    /// Overrides of the namespace policies.
    #[serde(default)]
    pub policies: Policies,
    /// The topic's properties (Pulsar's topic properties): free-form
    /// strings that protocols keep with the topic, such as the Kafka
    /// handler's per-topic configs (`kafka.max.message.bytes`, ...).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub properties: std::collections::BTreeMap<String, String>,
}

/// Why a topic operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The name is not valid.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// No such topic (and auto-creation is off or not asked for).
    #[error("topic {0} does not exist")]
    NotFound(String),
    /// No such namespace.
    #[error("namespace {0} does not exist")]
    NamespaceNotFound(String),
    /// The topic exists already.
    #[error("topic {0} already exists")]
    AlreadyExists(String),
    /// A tenant or namespace still holds something (the message says what).
    #[error("{0}")]
    NotEmpty(String),
    /// The request does not fit the topic (a partition that does not exist, a
    /// partitioned topic addressed as a whole, a bad partition count).
    #[error("{0}")]
    Invalid(String),
    /// The topic's ledger failed.
    #[error("topic {topic}: {source}")]
    Ledger {
        /// The topic partition.
        topic: String,
        /// The cause.
        source: LedgerError,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// Another broker serves the partition, or this one may not now.
    #[error(transparent)]
    NotServed(#[from] crate::cluster::NotServed),
    /// Tiered storage failed (the object store, a manifest).
    #[error(transparent)]
    Tiering(#[from] crate::tiering::TieringError),
}

/// The topics of this broker.
pub struct Topics {
    store: Arc<dyn MetadataStore>,
    ledgers_dir: PathBuf,
    config: StorageConfig,
    backend: Arc<dyn Backend>,
    ledgers: Mutex<HashMap<TopicName, Arc<OnceCell<Arc<ManagedLedger>>>>>,
    /// Counts topic creations (and partition additions), so that an open
    /// waiting for a missing topic wakes when one is created.
    created: tokio::sync::watch::Sender<u64>,
    /// The cluster, with a shared metadata store: partitions are served
    /// only by their owner.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// Tiered storage, with this run's epoch (used without a cluster, where
    /// no ownership epoch exists).
    tiering: std::sync::OnceLock<(Arc<crate::tiering::Tiering>, i64)>,
}

/// The file in a partition's directory naming its topic's creation time (cluster mode).
const INCARNATION_FILE: &str = "TOPIC";

/// Follows topic deletions made anywhere in the cluster.
async fn follow_deletions(topics: std::sync::Weak<Topics>, mut deletions: tokio::sync::broadcast::Receiver<String>) {
    loop {
        let key = match deletions.recv().await {
            Ok(key) => key,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "topic deletions missed; their partitions are cleaned at their next open");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(topics) = topics.upgrade() else { return };
        let Some(path) = key.strip_prefix("/admin/topics/") else { continue };
        if let Ok(name) = TopicName::parse(&format!("persistent://{path}")) {
            topics.drop_local(&name).await;
        }
    }
}

/// Closes the ledgers of partitions this broker lost.
async fn follow_losses(topics: std::sync::Weak<Topics>, mut losses: tokio::sync::broadcast::Receiver<TopicName>) {
    loop {
        let partition = match losses.recv().await {
            Ok(partition) => partition,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                // Rare (a burst of losses): close every ledger no longer served.
                tracing::warn!(missed = n, "partition losses missed; closing every ledger not served here");
                let Some(topics) = topics.upgrade() else { return };
                for (partition, _) in topics.open_partitions() {
                    if !topics.serves(&partition) {
                        topics.close_lost(&partition).await;
                    }
                }
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(topics) = topics.upgrade() else { return };
        topics.close_lost(&partition).await;
    }
}

/// A topic's record key in the metadata store.
pub(crate) fn topic_key(name: &TopicName) -> String {
    format!("/admin/topics/{}/{}/{}", name.tenant, name.namespace, name.local)
}

fn namespace_key(namespace: &str) -> String {
    format!("/admin/namespaces/{namespace}")
}

/// Wall-clock time, Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, TopicError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| TopicError::Metadata(MetadataError::Store(e.to_string())))
}

impl Topics {
    /// Topics over `store`, ledgers under `ledgers_dir`. Creates `public/default`.
    pub async fn open(
        store: Arc<dyn MetadataStore>,
        ledgers_dir: PathBuf,
        config: StorageConfig,
        backend: Arc<dyn Backend>,
    ) -> Result<Arc<Self>, TopicError> {
        let created = tokio::sync::watch::Sender::new(0);
        let topics = Arc::new(Self {
            store,
            ledgers_dir,
            config,
            backend,
            ledgers: Mutex::new(HashMap::new()),
            created,
            cluster: std::sync::OnceLock::new(),
            tiering: std::sync::OnceLock::new(),
        });
        topics.ensure_namespace("public/default").await?;
        Ok(topics)
    }

    /// Reserves `count` numbers of counter `name` (`/counters/<name>` in the
    /// metadata store, which holds the next free number): the first of the
    /// block. A compare-and-set on the key's version, so concurrent callers,
    /// on any broker sharing the store, get disjoint blocks. A missing
    /// counter starts at `floor`.
    pub async fn allocate(&self, name: &str, count: u64, floor: u64) -> Result<u64, TopicError> {
        if name.is_empty() || name.contains('/') || count == 0 {
            return Err(TopicError::Invalid(format!(
                "counter {name:?}, {count} numbers: a name without '/' and at least 1"
            )));
        }
        let (store, key) = (Arc::clone(&self.store), format!("/counters/{name}"));
        blocking(move || -> Result<u64, TopicError> {
            // A few rounds: each loses only to another allocation.
            for _ in 0..64 {
                let (start, expect) = match store.get(&key)? {
                    None => (floor, Expect::Absent),
                    Some(v) => {
                        let text = String::from_utf8_lossy(&v.value);
                        let next = text
                            .trim()
                            .parse::<u64>()
                            .map_err(|_| TopicError::Invalid(format!("counter {key} holds {text:?}, not a number")))?;
                        (next, Expect::Version(v.version))
                    }
                };
                let end = start
                    .checked_add(count)
                    .ok_or_else(|| TopicError::Invalid(format!("counter {key} is exhausted")))?;
                match store.put(&key, end.to_string().as_bytes(), expect) {
                    Ok(_) => return Ok(start),
                    Err(MetadataError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(TopicError::Metadata(MetadataError::Store(format!(
                "counter {key}: too many concurrent allocations; try again"
            ))))
        })
        .await?
    }

    /// Serves partitions only while `cluster` says this broker owns them,
    /// and drops the local data of topics other brokers delete.
    pub fn set_cluster(self: &Arc<Self>, cluster: Arc<crate::cluster::Cluster>) {
        let deletions = cluster.topic_deletions();
        let losses = cluster.losses();
        if self.cluster.set(cluster).is_ok() {
            tokio::spawn(follow_deletions(Arc::downgrade(self), deletions));
            tokio::spawn(follow_losses(Arc::downgrade(self), losses));
        }
    }

    /// Tiers sealed segments to `tiering`'s object store and restores
    /// partitions from it (`run_epoch`: this run's epoch, used without a
    /// cluster); starts the offloader.
    pub fn set_tiering(self: &Arc<Self>, tiering: Arc<crate::tiering::Tiering>, run_epoch: i64) {
        if self.tiering.set((Arc::clone(&tiering), run_epoch)).is_ok() {
            tiering.start(Arc::downgrade(self));
        }
    }

    /// Tiered storage, if configured.
    pub fn tiering(&self) -> Option<&Arc<crate::tiering::Tiering>> {
        self.tiering.get().map(|(t, _)| t)
    }

    /// Closes this broker's ledger of `partition`, lost to another broker
    /// (or with the session): when it is served here again, it opens anew,
    /// restored from the tiered log if another broker wrote meanwhile.
    pub async fn close_lost(&self, partition: &TopicName) {
        let cell = self.ledgers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(partition);
        if let Some(tiering) = self.tiering() {
            tiering.forget(partition);
        }
        if let Some(ledger) = cell.and_then(|c| c.get().cloned()) {
            ledger.close().await;
            tracing::info!(partition = %partition, "ledger closed: the partition is no longer served here");
        }
    }

    /// The record of the topic `partition` belongs to: its partitioned
    /// topic's, or its own (a non-partitioned topic, whatever its name).
    async fn owning_record(&self, partition: &TopicName) -> Result<Option<TopicRecord>, TopicError> {
        let base = partition.base();
        match self.record(&base).await? {
            Some(r) if r.partitions > 0 || &base == partition => Ok(Some(r)),
            _ => self.record(partition).await,
        }
    }

    /// The creation time of the topic `partition` belongs to (0 if unknown).
    async fn incarnation(&self, partition: &TopicName) -> Result<i64, TopicError> {
        Ok(self.owning_record(partition).await?.map_or(0, |r| r.created_ms))
    }

    /// Opens `partition`'s ledger; with tiering, restored from the tiered
    /// log first and begun in this broker's epoch.
    async fn open_ledger(&self, partition: &TopicName) -> Result<Arc<ManagedLedger>, TopicError> {
        let dir = self.ledger_dir(partition);
        let tiered = match self.tiering.get() {
            Some((tiering, run_epoch)) => {
                let epoch = match self.cluster.get() {
                    Some(cluster) => cluster
                        .epoch(partition)
                        .ok_or_else(|| crate::cluster::NotServed::Unowned { partition: partition.to_string() })?,
                    None => *run_epoch,
                };
                let incarnation = self.incarnation(partition).await?;
                let capacity = self.config.ledger.segment_bytes;
                let prepared = tiering.prepare(partition, dir.clone(), epoch, incarnation, capacity).await?;
                Some((tiering, epoch, incarnation, prepared))
            }
            None => None,
        };
        let ledger = ManagedLedger::open(
            partition.to_string(),
            dir.clone(),
            self.config.ledger.clone(),
            Arc::clone(&self.backend),
        )
        .await
        .map(Arc::new)
        .map_err(|source| {
            tracing::error!(topic = %partition, error = %source, "topic refused: its ledger cannot be opened");
            TopicError::Ledger { topic: partition.to_string(), source }
        })?;
        if let Some((tiering, epoch, incarnation, prepared)) = tiered {
            if !prepared.remote.is_empty() {
                let (opened, source, remote) = (Arc::clone(&ledger), tiering.source(), prepared.remote);
                let attached = blocking(move || opened.attach_remote(remote, source)).await?;
                tracing::info!(partition = %partition, attached, "tiered segments attached: read from the bucket on demand");
            }
            if let Err(e) = tiering.begin(partition, &ledger, dir, epoch, incarnation, prepared.version).await {
                ledger.close().await;
                return Err(e.into());
            }
        }
        Ok(ledger)
    }

    /// Closes and removes this broker's ledgers of topic `name` (deleted by
    /// another broker: its metadata is gone), open or not, and gives up
    /// their ownership.
    async fn drop_local(&self, name: &TopicName) {
        let of_topic = |p: &TopicName| p == name || (p.partition().is_some() && &p.base() == name);
        let open: Vec<(TopicName, Arc<OnceCell<Arc<ManagedLedger>>>)> = {
            let mut ledgers = self.ledgers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let names: Vec<TopicName> = ledgers.keys().filter(|p| of_topic(p)).cloned().collect();
            names.into_iter().filter_map(|n| ledgers.remove(&n).map(|c| (n, c))).collect()
        };
        for (partition, cell) in open {
            if let Some(tiering) = self.tiering() {
                tiering.forget(&partition);
            }
            if let Some(ledger) = cell.get() {
                ledger.close().await;
            }
            if let Some(cluster) = self.cluster.get() {
                cluster.release(&partition).await;
            }
        }
        // Every directory of the topic here, opened in this run or not.
        let dir = self.ledgers_dir.join(&name.tenant).join(&name.namespace);
        let (backend, file) = (Arc::clone(&self.backend), name.file_name());
        let removed = blocking(move || {
            let mut removed = 0;
            // Directories: the backend lists files only.
            let entries = std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path());
            for path in entries {
                let Some(entry) = path.file_name().and_then(|f| f.to_str()) else { continue };
                let partition_of = entry
                    .strip_prefix(file.as_str())
                    .and_then(|rest| rest.strip_prefix(crate::topics::name::PARTITION_SUFFIX))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if (entry == file || partition_of) && backend.remove_dir_all(&path).is_ok() {
                    removed += 1;
                }
            }
            removed
        })
        .await
        .unwrap_or(0);
        tracing::info!(topic = %name, removed, "topic deleted by another broker: its local data is removed");
    }

    /// In a cluster, makes `partition`'s local directory hold only data of
    /// the topic as it exists now: its `TOPIC` file names the topic's
    /// creation time; a directory left by an earlier topic of the same name
    /// (deleted while this broker was down, or before the deletion reached
    /// it) is emptied before the ledger opens.
    async fn check_incarnation(&self, partition: &TopicName) -> Result<(), TopicError> {
        let Some(record) = self.owning_record(partition).await? else { return Ok(()) };
        let dir = self.ledger_dir(partition);
        let backend = Arc::clone(&self.backend);
        let stamp = record.created_ms.to_string();
        let topic = partition.to_string();
        blocking(move || -> std::io::Result<()> {
            let marker = dir.join(INCARNATION_FILE);
            match backend.read_file(&marker) {
                Ok(found) if found == stamp.as_bytes() => return Ok(()),
                Ok(found) => {
                    tracing::warn!(topic = %topic, found = %String::from_utf8_lossy(&found), created_ms = %stamp,
                        "local data of an earlier topic of this name removed");
                    backend.remove_dir_all(&dir)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            backend.create_dir_all(&dir)?;
            backend.write_atomic(&marker, stamp.as_bytes())
        })
        .await?
        .map_err(|e| TopicError::Ledger {
            topic: partition.to_string(),
            source: LedgerError::Io { context: "check the topic's incarnation".into(), source: e },
        })
    }

    /// The cluster, if the metadata store is shared.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// Whether this broker may serve `partition` now (always, standalone).
    pub fn serves(&self, partition: &TopicName) -> bool {
        self.cluster.get().is_none_or(|c| c.serves(partition))
    }

    /// Whether this broker may serve `partition` now (always, standalone):
    /// checked before and after every append and before every read, so a
    /// broker that lost a partition (or whose session may have expired)
    /// neither acknowledges nor shows a write.
    pub fn check_served(&self, partition: &TopicName) -> Result<(), TopicError> {
        match self.cluster.get() {
            Some(cluster) => cluster.check(partition).map_err(TopicError::from),
            None => Ok(()),
        }
    }

    /// Whether an append this broker stored may be acknowledged (asked after
    /// the append): [`check_served`](Self::check_served), except during a
    /// graceful handover with tiering (`Cluster::stop_serving`).
    pub fn check_acknowledge(&self, partition: &TopicName) -> Result<(), TopicError> {
        match self.cluster.get() {
            Some(cluster) => cluster.check_acknowledge(partition).map_err(TopicError::from),
            None => Ok(()),
        }
    }

    /// The storage settings.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// Creates tenant and namespace `tenant/ns` if missing.
    pub async fn ensure_namespace(&self, namespace: &str) -> Result<(), TopicError> {
        let tenant = match namespace.split_once('/') {
            Some((tenant, ns)) if name::valid_segment(tenant) && name::valid_segment(ns) => tenant,
            _ => {
                return Err(TopicError::Invalid(format!(
                    "invalid namespace {namespace:?}: expected tenant/namespace, each 1-255 characters among letters, digits and - _ . = :"
                )))
            }
        };
        let store = Arc::clone(&self.store);
        let (tenant_key, ns_key) = (format!("/admin/tenants/{tenant}"), namespace_key(namespace));
        blocking(move || {
            for key in [tenant_key, ns_key] {
                match store.put(&key, b"{}", Expect::Absent) {
                    Ok(_) | Err(MetadataError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await??;
        Ok(())
    }

    async fn get_json<T: for<'de> Deserialize<'de> + Send + 'static>(
        &self,
        key: String,
    ) -> Result<Option<T>, TopicError> {
        let store = Arc::clone(&self.store);
        let raw = blocking(move || store.get(&key).map(|v| v.map(|v| (key, v)))).await??;
        match raw {
            None => Ok(None),
            Some((key, v)) => serde_json::from_slice(&v.value)
                .map(Some)
                .map_err(|e| TopicError::Metadata(MetadataError::Store(format!("{key}: {e}")))),
        }
    }

    /// The stored record of `name` (a topic, not a partition).
    pub async fn record(&self, name: &TopicName) -> Result<Option<TopicRecord>, TopicError> {
        self.get_json(topic_key(name)).await
    }

    /// The policies of namespace `tenant/ns`.
    pub async fn namespace_policies(&self, namespace: &str) -> Result<Policies, TopicError> {
        Ok(self.get_json(namespace_key(namespace)).await?.unwrap_or_default())
    }

    /// Creates topic `name` with `partitions` (0: non-partitioned).
    pub async fn create(&self, name: &TopicName, partitions: u32) -> Result<TopicRecord, TopicError> {
        if name.partition().is_some() && partitions > 0 {
            return Err(TopicError::Invalid(format!("a partitioned topic's name cannot end in -partition-N: {name}")));
        }
        if partitions > 100_000 {
            return Err(TopicError::Invalid(format!("{partitions} partitions is more than the limit of 100000")));
        }
        if self.get_json::<serde_json::Value>(namespace_key(&name.namespace_path())).await?.is_none() {
            return Err(TopicError::NamespaceNotFound(name.namespace_path()));
        }
        if name.partition().is_some() && self.record(&name.base()).await?.is_some_and(|r| r.partitions > 0) {
            // It would share its ledger with a partition of that topic.
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        let record = TopicRecord {
            partitions,
            created_ms: now_ms(),
            policies: Policies::default(),
            properties: Default::default(),
        };
        let bytes =
            serde_json::to_vec(&record).map_err(|e| TopicError::Metadata(MetadataError::Store(e.to_string())))?;
        let (store, key) = (Arc::clone(&self.store), topic_key(name));
        match blocking(move || store.put(&key, &bytes, Expect::Absent)).await? {
            Ok(_) => {
                tracing::info!(topic = %name, partitions, "topic created");
                self.created.send_modify(|n| *n += 1);
                Ok(record)
            }
            Err(MetadataError::Conflict { .. }) => Err(TopicError::AlreadyExists(name.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// The topic's record, creating it per the auto-creation policy if it is
    /// missing and `auto_create` is asked for.
    pub async fn resolve(&self, name: &TopicName, auto_create: bool) -> Result<TopicRecord, TopicError> {
        if let Some(record) = self.record(name).await? {
            return Ok(record);
        }
        if !auto_create {
            return Err(TopicError::NotFound(name.to_string()));
        }
        // The namespace's override, else the broker's rules.
        let rules = self.namespace_policies(&name.namespace_path()).await?.auto_topic_creation_override;
        let (allowed, partitions) = match rules {
            Some(r) => (
                r.allow_auto_topic_creation,
                if r.topic_type == "partitioned" {
                    r.default_num_partitions.unwrap_or(self.config.default_partitions).max(1)
                } else {
                    0
                },
            ),
            None => (
                self.config.auto_create,
                if self.config.auto_create_partitioned { self.config.default_partitions } else { 0 },
            ),
        };
        if !allowed {
            return Err(TopicError::NotFound(name.to_string()));
        }
        match self.create(name, partitions).await {
            Ok(record) => Ok(record),
            // Created concurrently by someone else: use theirs.
            Err(TopicError::AlreadyExists(_)) => {
                self.record(name).await?.ok_or_else(|| TopicError::NotFound(name.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Partition count of `name` (0: non-partitioned). A partition's name
    /// reports 0, as in Pulsar.
    pub async fn partitions(&self, name: &TopicName, auto_create: bool) -> Result<u32, TopicError> {
        if name.partition().is_some() {
            if let Some(record) = self.record(&name.base()).await? {
                if record.partitions > 0 {
                    return Ok(0);
                }
            }
        }
        Ok(self.resolve(name, auto_create).await?.partitions)
    }

    /// Raises the partition count of partitioned topic `name` to `count`.
    pub async fn create_partitions(&self, name: &TopicName, count: u32) -> Result<(), TopicError> {
        let mut record = self.record(name).await?.ok_or_else(|| TopicError::NotFound(name.to_string()))?;
        if record.partitions == 0 {
            return Err(TopicError::Invalid(format!("{name} is not partitioned; its partition count cannot change")));
        }
        if count <= record.partitions {
            return Err(TopicError::Invalid(format!(
                "{name} has {} partitions; the count can only grow (asked for {count})",
                record.partitions
            )));
        }
        if count > 100_000 {
            return Err(TopicError::Invalid(format!("{count} partitions is more than the limit of 100000")));
        }
        record.partitions = count;
        let bytes =
            serde_json::to_vec(&record).map_err(|e| TopicError::Metadata(MetadataError::Store(e.to_string())))?;
        let (store, key) = (Arc::clone(&self.store), topic_key(name));
        blocking(move || store.put(&key, &bytes, Expect::Any)).await??;
        tracing::info!(topic = %name, partitions = count, "partitions added");
        self.created.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Every topic in `tenant/ns`, with its partition count.
    pub async fn list(&self, namespace: &str) -> Result<Vec<(TopicName, u32)>, TopicError> {
        if self.get_json::<serde_json::Value>(namespace_key(namespace)).await?.is_none() {
            return Err(TopicError::NamespaceNotFound(namespace.to_owned()));
        }
        let store = Arc::clone(&self.store);
        let prefix = format!("/admin/topics/{namespace}/");
        let keys = blocking(move || store.list(&prefix).map(|keys| (keys, prefix))).await??;
        let mut out = Vec::new();
        for key in keys.0 {
            let local = &key[keys.1.len()..];
            let name = TopicName::parse(&format!("persistent://{namespace}/{local}"))?;
            if let Some(record) = self.record(&name).await? {
                out.push((name, record.partitions));
            }
        }
        Ok(out)
    }

    /// The stored partitions (or the topic itself, if non-partitioned) of `record`.
    fn partition_names(name: &TopicName, record: &TopicRecord) -> Vec<TopicName> {
        if record.partitions == 0 {
            vec![name.clone()]
        } else {
            (0..record.partitions).map(|i| name.partition_name(i)).collect()
        }
    }

    /// Deletes topic `name` (every partition's data and its metadata).
    pub async fn delete(&self, name: &TopicName) -> Result<(), TopicError> {
        let record = self.record(name).await?.ok_or_else(|| TopicError::NotFound(name.to_string()))?;
        for partition in Self::partition_names(name, &record) {
            if let Some(tiering) = self.tiering() {
                tiering.delete_partition(&partition).await;
            }
            let cell = self.ledgers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&partition);
            if let Some(ledger) = cell.and_then(|c| c.get().cloned()) {
                ledger.close().await;
            }
            let dir = self.ledger_dir(&partition);
            let backend = Arc::clone(&self.backend);
            blocking(move || match backend.remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            })
            .await?
            .map_err(|e| TopicError::Ledger {
                topic: partition.to_string(),
                source: LedgerError::Io { context: "delete topic data".into(), source: e },
            })?;
        }
        let (store, key) = (Arc::clone(&self.store), topic_key(name));
        blocking(move || store.delete(&key, Expect::Any)).await??;
        tracing::info!(topic = %name, "topic deleted");
        Ok(())
    }

    fn ledger_dir(&self, partition: &TopicName) -> PathBuf {
        self.ledgers_dir.join(&partition.tenant).join(&partition.namespace).join(partition.file_name())
    }

    /// The ledger of a non-partitioned topic or of one partition, opened on
    /// first use (and the topic auto-created if `auto_create` and allowed).
    pub async fn ledger(&self, partition: &TopicName, auto_create: bool) -> Result<Arc<ManagedLedger>, TopicError> {
        if let Some(cluster) = self.cluster.get() {
            // Served here only once owned here: claimed at its first use,
            // unless another broker owns it (or this one is fenced).
            match cluster.check(partition) {
                Ok(()) => {}
                Err(fenced @ crate::cluster::NotServed::Fenced { .. }) => return Err(fenced.into()),
                Err(_) => {
                    self.check_partition(partition, auto_create).await?;
                    cluster.acquire(partition).await?;
                }
            }
            if self.ledgers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(partition).is_none() {
                self.check_incarnation(partition).await?;
            }
        }
        let cell = self.ledgers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(partition).cloned();
        if let Some(ledger) = cell.as_ref().and_then(|c| c.get()) {
            return Ok(Arc::clone(ledger));
        }
        // Tests make this slow path slower (FAILPOINTS="topics::open=1*return(400)":
        // the first open waits 400 ms), as a busy metadata store or disk would.
        #[cfg(feature = "failpoints")]
        if let Some(Some(ms)) = fail::eval("topics::open", |ms| ms.and_then(|ms| ms.parse::<u64>().ok())) {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        self.check_partition(partition, auto_create).await?;
        let cell = Arc::clone(
            self.ledgers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(partition.clone())
                .or_default(),
        );
        let ledger = cell.get_or_try_init(|| self.open_ledger(partition)).await?;
        Ok(Arc::clone(ledger))
    }

    /// [`ledger`](Self::ledger), waiting up to `wait` for a missing topic
    /// (or partition) to be created by someone else. Creations through
    /// this broker wake it at once.
    pub async fn ledger_waiting(
        &self,
        partition: &TopicName,
        auto_create: bool,
        wait: Duration,
    ) -> Result<Arc<ManagedLedger>, TopicError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Subscribed before the check, so a creation in between is seen.
            let mut created = self.created.subscribe();
            let opened = self.ledger(partition, auto_create).await;
            // Missing, or (a partition) beyond the count: it may be being created.
            let may_come = match &opened {
                Err(TopicError::NotFound(_)) => true,
                Err(TopicError::Invalid(_)) => partition.partition().is_some(),
                _ => false,
            };
            if !may_come || wait.is_zero() || tokio::time::timeout_at(deadline, created.changed()).await.is_err() {
                return opened;
            }
        }
    }

    /// Checks that `partition` names stored data: a non-partitioned topic, or
    /// a partition below its topic's count.
    async fn check_partition(&self, partition: &TopicName, auto_create: bool) -> Result<(), TopicError> {
        if let Some((_, n)) = partition.partition() {
            let base = partition.base();
            let check = |partitions: u32| {
                if n < partitions {
                    Ok(())
                } else {
                    Err(TopicError::Invalid(format!("{base} has {partitions} partitions; there is no partition {n}")))
                }
            };
            let base_record = self.record(&base).await?;
            if let Some(record) = &base_record {
                if record.partitions > 0 {
                    return check(record.partitions);
                }
            }
            // A non-partitioned topic whose name happens to end in -partition-N.
            if self.record(partition).await?.is_some() {
                return Ok(());
            }
            if base_record.is_none() && auto_create && self.config.auto_create && self.config.auto_create_partitioned {
                return check(self.resolve(&base, true).await?.partitions);
            }
            return Err(TopicError::NotFound(partition.to_string()));
        }
        let record = self.resolve(partition, auto_create).await?;
        if record.partitions > 0 {
            return Err(TopicError::Invalid(format!(
                "{partition} is partitioned ({} partitions): address its partitions, {}",
                record.partitions,
                partition.partition_name(0)
            )));
        }
        Ok(())
    }

    /// Every stored partition (or non-partitioned topic) of every namespace.
    pub async fn all_partitions(&self) -> Result<Vec<TopicName>, TopicError> {
        let store = Arc::clone(&self.store);
        let keys = blocking(move || store.list("/admin/topics/")).await??;
        let mut out = Vec::new();
        for key in keys {
            let Some(path) = key.strip_prefix("/admin/topics/") else { continue };
            let Ok(name) = TopicName::parse(&format!("persistent://{path}")) else { continue };
            if let Some(record) = self.record(&name).await? {
                out.extend(Self::partition_names(&name, &record));
            }
        }
        Ok(out)
    }

    /// Every partition opened so far, with its ledger.
    pub fn open_partitions(&self) -> Vec<(TopicName, Arc<ManagedLedger>)> {
        self.ledgers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(|(name, c)| c.get().map(|l| (name.clone(), Arc::clone(l))))
            .collect()
    }

    /// Every ledger opened so far.
    pub fn open_ledgers(&self) -> Vec<Arc<ManagedLedger>> {
        self.ledgers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter_map(|c| c.get().cloned())
            .collect()
    }

    /// Closes every open ledger (syncs data, saves cursors).
    pub async fn close_all(&self) {
        for ledger in self.open_ledgers() {
            ledger.close().await;
        }
    }
}
