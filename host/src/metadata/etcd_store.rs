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

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};

use super::{Expect, MetadataError, MetadataStore, Versioned};

/// How long one etcd request may take before it fails (a store that does
/// not answer must not hang the broker's blocking threads).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`MetadataStore`] on an etcd cluster.
pub struct EtcdStore {
    client: Client,
    runtime: tokio::runtime::Handle,
    url: String,
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
    /// `timeout`, and checks that it answers.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, MetadataError> {
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
        Ok(Self { client, runtime: tokio::runtime::Handle::current(), url: url.to_owned() })
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
