//! Metadata: tenants, namespaces, topics and their policies, behind the small
//! [`MetadataStore`] trait: versioned keys with compare-and-set, the shape of
//! Pulsar's metadata store. Two stores: [`RedbStore`], embedded (one
//! broker, the default), and [`EtcdStore`] (`metadataStoreUrl=etcd:...`,
//! shared by the brokers of a cluster). `conformance` is the suite both pass.

#[doc(hidden)]
pub mod conformance;
mod etcd_store;
mod mirror;
mod redb_store;

pub use etcd_store::{endpoints as etcd_endpoints, Claim, EtcdStore};
pub use mirror::{Mirror, Mirrored};
pub use redb_store::RedbStore;

/// A stored value and its version (incremented by every write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The bytes stored.
    pub value: Vec<u8>,
    /// Starts at 1.
    pub version: u64,
}

/// The condition a write is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is there.
    Any,
    /// Only if the key does not exist.
    Absent,
    /// Only if the key is at this version.
    Version(u64),
}

/// Why a metadata operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The condition of a write did not hold.
    #[error("metadata key {key}: expected {expected:?}, found version {found:?}")]
    Conflict {
        /// The key.
        key: String,
        /// The condition.
        expected: Expect,
        /// The version found (None: absent).
        found: Option<u64>,
    },
    /// The store failed.
    #[error("metadata store: {0}")]
    Store(String),
}

/// A versioned key-value store. Keys are `/`-separated paths.
pub trait MetadataStore: Send + Sync + 'static {
    /// The value at `key`.
    fn get(&self, key: &str) -> Result<Option<Versioned>, MetadataError>;
    /// Writes `value` at `key` if `expect` holds; returns the new version.
    fn put(&self, key: &str, value: &[u8], expect: Expect) -> Result<u64, MetadataError>;
    /// Deletes `key` if `expect` holds; deleting a missing key with `Any` is not an error.
    fn delete(&self, key: &str, expect: Expect) -> Result<(), MetadataError>;
    /// Every key that starts with `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, MetadataError>;
}
