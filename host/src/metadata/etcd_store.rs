//! The metadata store on etcd (`metadataStoreUrl=etcd:http://host:2379`),
//! for brokers that share their metadata: Pulsar's own choice beside
//! ZooKeeper (PIP-45). Keys are stored as they are named (`/admin/...`);
//! a key's version is etcd's own `version` (1 at creation, +1 per write,
//! 0 for a missing key), and every conditional write is one etcd
//! transaction comparing it, so the conditions hold across brokers.
//!
//! The [`MetadataStore`] trait is synchronous: its callers run it on
//! blocking threads (`Topics`). This store blocks those threads on the
//! runtime it was opened in, where the etcd client's connections live.
//!
//! The process's **session** is an etcd lease, granted at connect with the
//! TTL `metadataStoreSessionTimeoutMillis` and kept alive by a task three
//! times per TTL. Ephemeral keys (the broker's registration) are bound to
//! it: etcd deletes them when the lease expires (the process died or lost
//! etcd for a whole TTL) or is revoked (a graceful stop).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp};

use super::{Expect, MetadataError, MetadataStore, Versioned};

/// How long one etcd request may take before it fails (a store that does
/// not answer must not hang the broker's blocking threads).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`MetadataStore`] on an etcd cluster.
pub struct EtcdStore {
    client: Client,
    runtime: tokio::runtime::Handle,
    url: String,
    /// The current session (a new one after an expiry: [`EtcdStore::renew_session`]).
    session: std::sync::RwLock<Arc<Session>>,
    /// Set by [`EtcdStore::close_session`]: no session is opened again.
    closed: AtomicBool,
}

/// What [`EtcdStore::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was created now, at this revision.
    Created {
        /// Its creation revision.
        revision: i64,
    },
    /// The key exists.
    Exists {
        /// Its value.
        value: Vec<u8>,
        /// Its creation revision.
        revision: i64,
        /// Its version.
        version: i64,
        /// The lease it is bound to (0: none).
        lease: i64,
    },
}

/// The session's state, shared with its keep-alive task.
struct Session {
    /// Its lease.
    lease: i64,
    ttl: Duration,
    /// False once a keep-alive found the lease expired, or it was revoked.
    alive: AtomicBool,
    origin: std::time::Instant,
    /// When (ms after `origin`) the last answered keep-alive was sent: the
    /// lease lives at least `ttl` past it, on etcd's side.
    renewed_ms: std::sync::atomic::AtomicU64,
}

impl Session {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// How much earlier than etcd could expire the lease the broker stops
/// trusting it: a quarter of the TTL, for clock rates and scheduling
/// delays (the lease's expiry is measured on etcd's clock, from when etcd
/// took the keep-alive, which is after it was sent).
fn safety_margin(ttl: Duration) -> Duration {
    ttl / 4
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("url", &self.url).finish()
    }
}

/// The endpoints of `metadataStoreUrl`: `etcd:http://a:2379,http://b:2379`
/// (the `http://` of the later ones may be left out, as Pulsar allows).
pub fn endpoints(url: &str) -> Result<Vec<String>, String> {
    let rest =
        url.strip_prefix("etcd:").ok_or_else(|| format!("{url:?} is not an etcd URL (etcd:http://host:port)"))?;
    let endpoints: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| if e.contains("://") { e.to_owned() } else { format!("http://{e}") })
        .collect();
    if endpoints.is_empty() {
        return Err(format!("{url:?} names no etcd endpoint"));
    }
    if let Some(bad) = endpoints.iter().find(|e| !e.starts_with("http://")) {
        return Err(format!("etcd endpoint {bad:?}: only http:// is supported"));
    }
    Ok(endpoints)
}

impl EtcdStore {
    /// Connects to the etcd cluster of `url` (see [`endpoints`]) within
    /// `timeout`, checks that it answers, and opens the session: a lease of
    /// `session_timeout` (whole seconds, at least 1), kept alive by a task.
    pub async fn connect(url: &str, timeout: Duration, session_timeout: Duration) -> Result<Self, MetadataError> {
        let endpoints = endpoints(url).map_err(MetadataError::Store)?;
        let options = ConnectOptions::new().with_connect_timeout(timeout).with_timeout(REQUEST_TIMEOUT);
        let failed = |e: &dyn std::fmt::Display| MetadataError::Store(format!("etcd at {url} does not answer: {e}"));
        let mut client = tokio::time::timeout(timeout, Client::connect(&endpoints, Some(options)))
            .await
            .map_err(|_| failed(&format!("no connection within {timeout:?}")))?
            .map_err(|e| failed(&e))?;
        // A connection is made lazily: one request proves the cluster is there.
        tokio::time::timeout(timeout, client.status())
            .await
            .map_err(|_| failed(&format!("no answer within {timeout:?}")))?
            .map_err(|e| failed(&e))?;
        let session = open_session(&client, session_timeout, url).await.map_err(|e| failed(&e))?;
        Ok(Self {
            client,
            runtime: tokio::runtime::Handle::current(),
            url: url.to_owned(),
            session: std::sync::RwLock::new(session),
            closed: AtomicBool::new(false),
        })
    }

    fn session(&self) -> Arc<Session> {
        Arc::clone(&self.session.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Opens a new session after the last one expired (its ephemeral keys
    /// are gone: the caller registers again); the new lease. Refused once
    /// the session was closed (a graceful stop) or while it is alive.
    pub async fn renew_session(&self) -> Result<i64, MetadataError> {
        let old = self.session();
        if self.closed.load(Ordering::Acquire) || old.alive.load(Ordering::Acquire) {
            return Err(MetadataError::Store("the metadata session is closed or still alive".into()));
        }
        let session = open_session(&self.client, old.ttl, &self.url).await.map_err(|e| self.error(e))?;
        let lease = session.lease;
        *self.session.write().unwrap_or_else(std::sync::PoisonError::into_inner) = session;
        Ok(lease)
    }

    /// Whether the session was closed for good (a graceful stop).
    pub fn session_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether the session's lease is known to be alive (false once etcd
    /// said it expired, or it was closed: its ephemeral keys are gone).
    pub fn session_alive(&self) -> bool {
        self.session().alive.load(Ordering::Acquire)
    }

    /// Whether the session is certainly alive at etcd now, with a margin:
    /// its last answered keep-alive was sent less than the TTL minus a
    /// quarter of it ago. An owner acknowledges writes only while this
    /// holds, so it stops before etcd can expire its lease and give what it
    /// owns to another broker (the fence of a broker cut off from etcd).
    pub fn session_fresh(&self) -> bool {
        let session = self.session();
        let limit = session.ttl.saturating_sub(safety_margin(session.ttl));
        let age = session.now_ms().saturating_sub(session.renewed_ms.load(Ordering::Acquire));
        session.alive.load(Ordering::Acquire) && Duration::from_millis(age) < limit
    }

    /// Keeps the keys under `prefix` in memory, by a watch ([`Mirror`](super::Mirror)).
    pub fn mirror(&self, prefix: &str) -> Arc<super::Mirror> {
        let _entered = self.runtime.enter();
        super::Mirror::start(self.client.clone(), prefix)
    }

    /// The session's lease id (its owner keys carry it).
    pub fn lease(&self) -> i64 {
        self.session().lease
    }

    /// Creates `key` bound to the session (deleted when the session ends),
    /// if it does not exist; a conflict names the version found.
    pub async fn create_ephemeral(&self, key: &str, value: &[u8]) -> Result<(), MetadataError> {
        match self.claim(key, value).await? {
            Claim::Created { .. } => Ok(()),
            Claim::Exists { version, .. } => Err(MetadataError::Conflict {
                key: key.to_owned(),
                expected: Expect::Absent,
                found: u64::try_from(version).ok(),
            }),
        }
    }

    /// Creates `key` with `value`, bound to the session, unless it exists;
    /// either way in one transaction, answering what is there now.
    pub async fn claim(&self, key: &str, value: &[u8]) -> Result<Claim, MetadataError> {
        let txn = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, Some(PutOptions::new().with_lease(self.lease())))])
            .or_else([TxnOp::get(key, None)]);
        let response = self.client.clone().txn(txn).await.map_err(|e| self.error(e))?;
        if response.succeeded() {
            // The transaction's revision is the key's creation revision.
            let revision = response.header().map_or(0, |h| h.revision());
            return Ok(Claim::Created { revision });
        }
        let existing = response.op_responses().into_iter().find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(get) => get.kvs().first().map(|kv| Claim::Exists {
                value: kv.value().to_vec(),
                revision: kv.create_revision(),
                version: kv.version(),
                lease: kv.lease(),
            }),
            _ => None,
        });
        // Deleted between the compare and the get: one more try decides.
        match existing {
            Some(claim) => Ok(claim),
            None => Box::pin(self.claim(key, value)).await,
        }
    }

    /// Deletes `key` if it is the one created at `revision` (a claim made
    /// then); true if it was.
    pub async fn delete_created_at(&self, key: &str, revision: i64) -> Result<bool, MetadataError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, revision)])
            .and_then([TxnOp::delete(key, None)]);
        let response = self.client.clone().txn(txn).await.map_err(|e| self.error(e))?;
        Ok(response.succeeded())
    }

    /// Deletes `key` if its value is a JSON object whose `instance` is
    /// `instance` (a registration this broker left behind); true if it did.
    pub async fn take_over_own(&self, key: &str, instance: &str) -> Result<bool, MetadataError> {
        let found = self.client.clone().get(key, None).await.map_err(|e| self.error(e))?;
        let Some(kv) = found.kvs().first() else { return Ok(true) };
        let theirs: Option<String> = serde_json::from_slice::<serde_json::Value>(kv.value())
            .ok()
            .and_then(|v| v.get("instance").and_then(|i| i.as_str()).map(str::to_owned));
        if theirs.as_deref() != Some(instance) {
            return Ok(false);
        }
        // Only that very key: a registration made since is left alone.
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, kv.mod_revision())])
            .and_then([TxnOp::delete(key, None)]);
        let response = self.client.clone().txn(txn).await.map_err(|e| self.error(e))?;
        Ok(response.succeeded())
    }

    /// Ends the session at once (a graceful stop): etcd deletes its
    /// ephemeral keys now rather than when the lease would expire.
    pub async fn close_session(&self) -> Result<(), MetadataError> {
        self.closed.store(true, Ordering::Release);
        let session = self.session();
        session.alive.store(false, Ordering::Release);
        self.client.clone().lease_revoke(session.lease).await.map(|_| ()).map_err(|e| self.error(e))
    }

    fn error(&self, e: etcd_client::Error) -> MetadataError {
        MetadataError::Store(format!("etcd at {}: {e}", self.url))
    }

    fn run<T>(&self, f: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> Result<T, MetadataError> {
        self.runtime.block_on(f).map_err(|e| MetadataError::Store(format!("etcd at {}: {e}", self.url)))
    }

    fn version(&self, key: &str) -> Result<Option<u64>, MetadataError> {
        Ok(self.get(key)?.map(|v| v.version))
    }

    /// The comparison of `expect`, or none for `Any`.
    fn compare(key: &str, expect: Expect) -> Option<Compare> {
        match expect {
            Expect::Any => None,
            // etcd gives a missing key version 0.
            Expect::Absent => Some(Compare::version(key, CompareOp::Equal, 0)),
            Expect::Version(v) => Some(Compare::version(key, CompareOp::Equal, i64::try_from(v).unwrap_or(i64::MAX))),
        }
    }
}

impl MetadataStore for EtcdStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, MetadataError> {
        let mut client = self.client.clone();
        let response = self.run(async move { client.get(key, None).await })?;
        Ok(response
            .kvs()
            .first()
            .map(|kv| Versioned { value: kv.value().to_vec(), version: u64::try_from(kv.version()).unwrap_or(0) }))
    }

    fn put(&self, key: &str, value: &[u8], expect: Expect) -> Result<u64, MetadataError> {
        let mut client = self.client.clone();
        let compare: Vec<Compare> = Self::compare(key, expect).into_iter().collect();
        // The put and a read of what it wrote, in one transaction: the
        // version answered is the one this write made.
        let txn = Txn::new().when(compare).and_then([TxnOp::put(key, value, None), TxnOp::get(key, None)]);
        let response = self.run(async move { client.txn(txn).await })?;
        if !response.succeeded() {
            return Err(MetadataError::Conflict { key: key.to_owned(), expected: expect, found: self.version(key)? });
        }
        let version = response.op_responses().into_iter().find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.version()),
            _ => None,
        });
        Ok(version.and_then(|v| u64::try_from(v).ok()).unwrap_or(1))
    }

    fn delete(&self, key: &str, expect: Expect) -> Result<(), MetadataError> {
        let mut client = self.client.clone();
        let compare: Vec<Compare> = Self::compare(key, expect).into_iter().collect();
        let txn = Txn::new().when(compare).and_then([TxnOp::delete(key, None)]);
        let response = self.run(async move { client.txn(txn).await })?;
        if !response.succeeded() {
            return Err(MetadataError::Conflict { key: key.to_owned(), expected: expect, found: self.version(key)? });
        }
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, MetadataError> {
        let mut client = self.client.clone();
        let options = GetOptions::new().with_prefix().with_keys_only();
        let response = self.run(async move { client.get(prefix, Some(options)).await })?;
        let mut keys: Vec<String> =
            response.kvs().iter().filter_map(|kv| kv.key_str().ok().map(str::to_owned)).collect();
        keys.sort();
        Ok(keys)
    }
}

/// Grants a lease of `ttl` (whole seconds, at least 1) and starts its keep-alive task.
async fn open_session(client: &Client, ttl: Duration, url: &str) -> Result<Arc<Session>, etcd_client::Error> {
    let ttl_s = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
    let lease = client.clone().lease_grant(ttl_s, None).await?.id();
    let session = Arc::new(Session {
        lease,
        ttl: Duration::from_secs(u64::try_from(ttl_s).unwrap_or(1)),
        alive: AtomicBool::new(true),
        origin: std::time::Instant::now(),
        // Granted just now, so it lives a TTL from before the grant.
        renewed_ms: std::sync::atomic::AtomicU64::new(0),
    });
    tokio::spawn(keep_alive(client.clone(), lease, ttl_s, Arc::clone(&session), url.to_owned()));
    Ok(session)
}

/// Keeps the session's lease alive: a keep-alive every third of the TTL, so
/// two can be lost before it expires. A lease etcd reports expired (TTL 0)
/// ends the task: its keys are gone, and the broker is told through
/// [`EtcdStore::session_alive`]. Errors (etcd unreachable) are retried.
async fn keep_alive(mut client: Client, lease: i64, ttl: i64, session: Arc<Session>, url: String) {
    let period = Duration::from_millis(u64::try_from(ttl).unwrap_or(1).saturating_mul(1000) / 3);
    let mut warned = false;
    while session.alive.load(Ordering::Acquire) {
        let sent_ms = session.now_ms();
        let answer = async {
            let (mut keeper, mut stream) = client.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            stream.message().await
        };
        match tokio::time::timeout(period, answer).await {
            // etcd answers a keep-alive of an expired lease with TTL 0;
            // etcd-client reports that, at the stream's opening, as this
            // error (its own fixed text for exactly that case).
            Ok(Err(etcd_client::Error::LeaseKeepAliveError(m))) if m == "lease not found" => {
                tracing::error!(url = %url, lease, "metadata session expired: this broker's registration is gone");
                session.alive.store(false, Ordering::Release);
                return;
            }
            Ok(Ok(Some(response))) if response.ttl() <= 0 => {
                tracing::error!(url = %url, lease, "metadata session expired: this broker's registration is gone");
                session.alive.store(false, Ordering::Release);
                return;
            }
            Ok(Ok(Some(_))) if !warned => session.renewed_ms.store(sent_ms, Ordering::Release),
            Ok(Ok(Some(_))) => {
                session.renewed_ms.store(sent_ms, Ordering::Release);
                tracing::info!(url = %url, "metadata session kept alive again");
                warned = false;
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer within {period:?}"),
                    _ => "the keep-alive stream ended".to_owned(),
                };
                if warned {
                    tracing::debug!(url = %url, lease, error = %why, "metadata session keep-alive failed again");
                } else {
                    tracing::warn!(url = %url, lease, error = %why, "metadata session keep-alive failed; retrying");
                    warned = true;
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}
