//! Tiered storage: sealed segments go to an S3-compatible object store, so a
//! partition keeps its records when it moves to another broker, even one
//! that never had them (its owner's machine lost, or a new broker).
//!
//! - **Offload** (`offload.rs`): the owner uploads each sealed segment,
//!   create-if-absent, under a key carrying its ownership epoch, then adds it
//!   to the partition's manifest (`manifest.rs`) in the metadata store: one
//!   compare-and-set per segment. What is appended to the active segment
//!   goes up every `managedLedgerOffloadIntervalSeconds` as a chunk (the
//!   manifest's `tail`), which bounds what a lost machine takes with it
//!   without rolling segments that often. A graceful stop rolls and uploads
//!   everything before it gives its partitions up, so nothing acknowledged
//!   stays behind.
//! - **Restore** (`restore.rs`): before a broker opens a partition it now
//!   owns, it makes the local directory agree with the manifest. If the
//!   manifest's last epoch is the one this directory last wrote in, nobody
//!   wrote since and the local data (tiered or not) is the log. Otherwise
//!   the log is the manifest's segments: local segments that are not among
//!   them (a tail no one else saw, data of an older owner) are removed, the
//!   missing ones downloaded, and the tail's chunks joined into one more
//!   sealed segment; the new owner continues after the last tiered offset.
//!   Then it adds its own epoch.
//!
//! - **Cursors** (`cursors.rs`): Pulsar subscriptions' durable cursors go
//!   to the metadata store and come back with the partition.
//!
//! Not built yet: reads below the local start from the object store (every
//! owner keeps the whole log locally; retention bounds it).

mod cursors;
mod manifest;
mod offload;
mod restore;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use object_store::{aws::AmazonS3Builder, ObjectStore};
use polyport_ledger::{backend::Backend, LedgerError, RemoteSegment, RemoteSource};

pub use manifest::{EpochStart, Manifest, TieredSegment};
pub use restore::Prepared;

use crate::{metadata::MetadataStore, topics::TopicName};

/// The tiered-storage keys of broker.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffloadConfig {
    /// `s3ManagedLedgerOffloadBucket`.
    pub bucket: String,
    /// `s3ManagedLedgerOffloadServiceEndpoint`; `None`: AWS.
    pub endpoint: Option<String>,
    /// `s3ManagedLedgerOffloadRegion`; `None`: `AWS_REGION`/`AWS_DEFAULT_REGION`, else us-east-1.
    pub region: Option<String>,
    /// `managedLedgerOffloadIntervalSeconds`: what was appended to the
    /// active segment goes up (as a chunk) at least this often.
    pub interval: Duration,
    /// `managedLedgerOffloadDeletionLagMs`: a tiered segment's local copy
    /// is deleted this long after its upload; reads fetch it again.
    pub deletion_lag: Duration,
}

/// Why tiering failed.
#[derive(Debug, thiserror::Error)]
pub enum TieringError {
    /// The object store failed or refused.
    #[error("object store (bucket {bucket}): {source}")]
    Objects {
        /// The bucket.
        bucket: String,
        /// The cause.
        source: object_store::Error,
    },
    /// A manifest cannot be read or written.
    #[error("manifest {key}: {reason}")]
    Manifest {
        /// Its key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Metadata(#[from] crate::metadata::MetadataError),
    /// A local file operation failed.
    #[error(transparent)]
    Ledger(#[from] polyport_ledger::LedgerError),
    /// A newer owner has begun: this broker must not change the partition.
    #[error("{partition}: epoch {epoch} was succeeded by epoch {newer}; this broker no longer owns it")]
    Superseded {
        /// The partition.
        partition: String,
        /// This broker's epoch.
        epoch: i64,
        /// The newer one.
        newer: i64,
    },
}

/// The object store, the manifests and each owned partition's tiering state.
pub struct Tiering {
    config: OffloadConfig,
    objects: Arc<dyn ObjectStore>,
    store: Arc<dyn MetadataStore>,
    backend: Arc<dyn Backend>,
    /// Prefix of every object key: the cluster name.
    cluster: String,
    /// This broker, as epochs record it.
    broker: String,
    /// Partitions begun here, with their epoch and cached manifest.
    partitions: Mutex<HashMap<TopicName, offload::Partition>>,
    /// Remote segments' reads, through `objects`.
    source: Arc<dyn RemoteSource>,
}

impl std::fmt::Debug for Tiering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiering").field("bucket", &self.config.bucket).finish()
    }
}

impl Tiering {
    /// Tiering to the configured bucket. Builds the client only: an
    /// unreachable store shows at the first upload (retried) or download.
    pub fn new(
        config: OffloadConfig,
        store: Arc<dyn MetadataStore>,
        backend: Arc<dyn Backend>,
        cluster: String,
        broker: String,
    ) -> Result<Arc<Self>, TieringError> {
        // Credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
        // and anything else S3 clients read come from the environment, as
        // with Pulsar's offloader.
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&config.bucket);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let region = config
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        // Our own loop retries with backoff; the client's retries stay short
        // so one partition's unreachable store does not hold the others long.
        let retry =
            object_store::RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(10), ..Default::default() };
        // Plain HTTP only when the endpoint says so (a store on the same host or network).
        let allow_http = config.endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
        let client = object_store::ClientOptions::new()
            .with_allow_http(allow_http)
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(120));
        let objects = builder
            .with_region(region)
            .with_retry(retry)
            .with_client_options(client)
            .build()
            .map_err(|source| TieringError::Objects { bucket: config.bucket.clone(), source })?;
        let objects: Arc<dyn ObjectStore> = Arc::new(objects);
        let source = Arc::new(ObjectSource {
            objects: Arc::clone(&objects),
            runtime: tokio::runtime::Handle::current(),
            bucket: config.bucket.clone(),
        });
        Ok(Arc::new(Self {
            config,
            source,
            objects,
            store,
            backend,
            cluster,
            broker,
            partitions: Mutex::new(HashMap::new()),
        }))
    }

    /// Where ledgers read their remote segments.
    pub fn source(&self) -> Arc<dyn RemoteSource> {
        Arc::clone(&self.source)
    }

    fn partitions(&self) -> std::sync::MutexGuard<'_, HashMap<TopicName, offload::Partition>> {
        self.partitions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets `partition` (closed here: lost, deleted, or the broker stopping).
    pub fn forget(&self, partition: &TopicName) {
        self.partitions().remove(partition);
    }

    fn objects_error(&self, source: object_store::Error) -> TieringError {
        TieringError::Objects { bucket: self.config.bucket.clone(), source }
    }

    /// The object key of a segment uploaded in `epoch`.
    fn object_key(&self, partition: &TopicName, epoch: i64, ledger_id: u64) -> String {
        format!(
            "{}/{}/{}/{}/{epoch:020}-{ledger_id:020}.log",
            self.cluster,
            partition.tenant,
            partition.namespace,
            partition.file_name()
        )
    }
}

/// Runs `f` on a blocking thread (metadata-store calls and file I/O).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TieringError> + Send + 'static,
) -> Result<T, TieringError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        TieringError::Ledger(polyport_ledger::LedgerError::io("tiering task", std::io::Error::other(e.to_string())))
    })?
}

/// Remote segments' bytes: a GET on the runtime, waited for by the blocking
/// thread that reads (ledger reads that may fetch run on blocking threads).
struct ObjectSource {
    objects: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Handle,
    bucket: String,
}

/// How long a fetch may take before the read fails (retriable).
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

impl RemoteSource for ObjectSource {
    fn fetch(&self, segment: &RemoteSegment) -> Result<bytes::Bytes, LedgerError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (objects, key) = (Arc::clone(&self.objects), segment.key.clone());
        self.runtime.spawn(async move {
            let got = async { objects.get(&object_store::path::Path::from(key.as_str())).await?.bytes().await };
            let _ = tx.send(got.await);
        });
        let context = format!("fetch {} from bucket {}", segment.key, self.bucket);
        match rx.recv_timeout(FETCH_TIMEOUT) {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) => Err(LedgerError::io(context, std::io::Error::other(e.to_string()))),
            Err(_) => Err(LedgerError::io(context, std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))),
        }
    }
}
