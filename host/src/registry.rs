//! The broker's registration in a shared metadata store: one ephemeral key
//! per live broker, `/loadbalance/brokers/<advertisedAddress>:<webServicePort>`
//! (Pulsar's broker id and path), holding what clients and other brokers
//! need to reach it: its Pulsar service URL and every handler's protocol
//! data (the Kafka handler's listeners), as Pulsar brokers publish them.
//! The key is bound to the broker's etcd session: it disappears when the
//! broker stops (at once) or dies (after `metadataStoreSessionTimeoutMillis`).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use crate::metadata::{EtcdStore, MetadataError};

/// Where live brokers register.
pub const BROKERS_PATH: &str = "/loadbalance/brokers";

/// What a broker publishes about itself (a subset of Pulsar's
/// `BrokerLookupData`, with its field names).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    /// `http://<advertisedAddress>:<webServicePort>`.
    pub web_service_url: String,
    /// `pulsar://<advertisedAddress>:<brokerServicePort>`, if the Pulsar protocol is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_service_url: Option<String>,
    /// `pulsar+ssl://<advertisedAddress>:<brokerServicePortTls>`, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_service_url_tls: Option<String>,
    /// Protocol name → the handler's protocol data (Pulsar's `protocols`).
    #[serde(default)]
    pub protocols: BTreeMap<String, String>,
    /// When this broker started, Unix ms.
    pub start_timestamp: i64,
    /// `polyport-<version>`.
    pub broker_version: String,
    /// This broker's data directory's identity ([`instance_id`]): a
    /// registration left by a crash of this same broker carries it, so a
    /// restart takes that key over instead of waiting for it to expire.
    #[serde(default)]
    pub instance: String,
}

/// The identity of `data_directory`, kept in its `INSTANCE` file (made at
/// its first use): only one process can hold the directory (its `LOCK`),
/// so a registration with this identity and this broker's id is this
/// broker's own, from a run that is over.
pub fn instance_id(data_directory: &std::path::Path) -> std::io::Result<String> {
    let path = data_directory.join("INSTANCE");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Unique enough for its purpose: the time, the process and a
    // stack address, hashed. Not a secret.
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.write_u32(std::process::id());
    let id = format!("{:016x}", hasher.finish());
    std::fs::write(&path, format!("{id}\n"))?;
    Ok(id)
}

/// A live registration; [`Registration::release`] ends it at a graceful stop.
pub struct Registration {
    store: Arc<EtcdStore>,
    key: String,
    renewal: tokio::task::JoinHandle<()>,
}

/// Why the broker could not register.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Another live broker has this id.
    #[error("another live broker is registered as {key} (same advertisedAddress and webServicePort)")]
    Duplicate {
        /// The key.
        key: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] MetadataError),
}

impl Registration {
    /// Registers broker `id` (`host:webServicePort`) with `data`. A key
    /// already there with this broker's instance is its own, left by a run
    /// that crashed: it is taken over. Another is waited for until
    /// `session_timeout` (and a second) has passed, as a stale key's lease
    /// expires by then; a key still there is another live broker's.
    pub async fn register(
        store: Arc<EtcdStore>,
        id: &str,
        data: &BrokerData,
        session_timeout: Duration,
    ) -> Result<Self, RegistryError> {
        let key = format!("{BROKERS_PATH}/{id}");
        let value = serde_json::to_vec(data).map_err(|e| MetadataError::Store(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + session_timeout + Duration::from_secs(1);
        let mut waiting = false;
        loop {
            match store.create_ephemeral(&key, &value).await {
                Ok(()) => {
                    tracing::info!(key = %key, "broker registered");
                    let renewal = tokio::spawn(renew(Arc::clone(&store), key.clone(), value));
                    return Ok(Self { store, key, renewal });
                }
                Err(MetadataError::Conflict { .. }) => {
                    if store.take_over_own(&key, &data.instance).await? {
                        tracing::info!(key = %key, "took over this broker's registration from its previous run");
                        continue;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(RegistryError::Duplicate { key });
                    }
                    if !waiting {
                        tracing::warn!(key = %key, "a registration with this broker's id exists; waiting for it to expire \
                            (a previous run of this broker), up to metadataStoreSessionTimeoutMillis");
                        waiting = true;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Ends the session, which deletes the registration at once.
    pub async fn release(self) {
        self.renewal.abort();
        match self.store.close_session().await {
            Ok(()) => tracing::info!(key = %self.key, "broker unregistered"),
            Err(e) => {
                tracing::warn!(key = %self.key, error = %e, "registration not released; it expires with the session")
            }
        }
    }
}

/// How often the renewal task looks at the session.
const SESSION_CHECK: Duration = Duration::from_millis(250);

/// Opens a new session whenever the current one expired (the broker was
/// paused, or cut off from etcd, longer than its TTL) and registers again
/// under it. Until then the broker serves nothing (the fence); once
/// registered again, it claims partitions as a newly started broker does.
async fn renew(store: Arc<EtcdStore>, key: String, value: Vec<u8>) {
    loop {
        tokio::time::sleep(SESSION_CHECK).await;
        if store.session_closed() {
            return;
        }
        if store.session_alive() {
            continue;
        }
        match store.renew_session().await {
            Ok(lease) => match store.create_ephemeral(&key, &value).await {
                Ok(()) => {
                    tracing::warn!(key = %key, lease, "metadata session renewed after it expired; registered again")
                }
                Err(e) => tracing::error!(key = %key, error = %e, "registered again under a new session: failed"),
            },
            Err(e) => tracing::debug!(error = %e, "metadata session not renewed yet"),
        }
    }
}
