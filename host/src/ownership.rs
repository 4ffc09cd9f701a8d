//! Ownership of topic partitions among the brokers sharing an etcd: the
//! primitives the cluster's routing is built on. A partition's owner is the
//! broker whose key `/loadbalance/owners/<tenant>/<namespace>/<partition>`
//! exists, bound to that broker's session (its etcd lease), claimed in one
//! transaction so that two brokers never both own it. The key's creation
//! revision is the ownership **epoch**: it grows with every new owner, so a
//! write stamped with an older epoch is a former owner's.
//!
//! The fence: an owner acknowledges writes only while its session is
//! fresh ([`EtcdStore::session_fresh`]), that is, for less than the TTL
//! minus a margin after its last answered keep-alive. etcd cannot expire
//! the lease, and so cannot let another broker claim the partition, before
//! that, so a broker cut off from etcd (or paused) stops acknowledging
//! before anyone else can start.
//!
//! Not yet used by the request paths: routing clients to owners, placement
//! and handover are the next steps of the cluster work (docs/cluster.md).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{
    metadata::{Claim, EtcdStore, MetadataError},
    topics::TopicName,
};

/// Where owner keys live.
pub const OWNERS_PATH: &str = "/loadbalance/owners";

/// A partition's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owning broker's id (`host:webServicePort`, as it registered).
    pub broker: String,
    /// The ownership epoch: the owner key's creation revision.
    pub epoch: i64,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// This broker owns the partition.
    Mine(Owner),
    /// Another broker does.
    Theirs(Owner),
}

#[derive(Serialize, Deserialize)]
struct OwnerValue {
    broker: String,
}

/// This broker's side of ownership.
pub struct Ownership {
    store: Arc<EtcdStore>,
    broker: String,
}

impl Ownership {
    /// Ownership for broker `broker` (its registered id) over `store`'s session.
    pub fn new(store: Arc<EtcdStore>, broker: String) -> Self {
        Self { store, broker }
    }

    fn key(partition: &TopicName) -> String {
        format!("{OWNERS_PATH}/{}/{}/{}", partition.tenant, partition.namespace, partition.file_name())
    }

    /// Claims `partition` unless another broker owns it: who owns it now.
    pub async fn claim(&self, partition: &TopicName) -> Result<Claimed, MetadataError> {
        let key = Self::key(partition);
        let value = serde_json::to_vec(&OwnerValue { broker: self.broker.clone() })
            .map_err(|e| MetadataError::Store(e.to_string()))?;
        // At most twice: once more after clearing a claim of this broker's
        // previous run.
        for _ in 0..2 {
            match self.store.claim(&key, &value).await? {
                Claim::Created { revision } => {
                    return Ok(Claimed::Mine(Owner { broker: self.broker.clone(), epoch: revision }));
                }
                Claim::Exists { value, revision, lease, .. } => {
                    let owner: OwnerValue = serde_json::from_slice(&value)
                        .map_err(|e| MetadataError::Store(format!("owner of {partition}: {e}")))?;
                    let owner = Owner { broker: owner.broker, epoch: revision };
                    if owner.broker != self.broker {
                        return Ok(Claimed::Theirs(owner));
                    }
                    if lease == self.store.lease() {
                        return Ok(Claimed::Mine(owner));
                    }
                    // This broker's id under another session: a claim of its
                    // previous run (one live broker per id: the registry),
                    // which would vanish when that lease expires. Cleared
                    // and claimed again, under this session, at a new epoch.
                    self.store.delete_created_at(&key, revision).await?;
                }
            }
        }
        Err(MetadataError::Store(format!("{partition}: ownership changed while it was claimed; try again")))
    }

    /// Gives up `partition` (a handover or a graceful stop): only the
    /// ownership of epoch `epoch`, never a later owner's.
    pub async fn release(&self, partition: &TopicName, epoch: i64) -> Result<bool, MetadataError> {
        self.store.delete_created_at(&Self::key(partition), epoch).await
    }

    /// Whether an owner may acknowledge a write now (the fence).
    pub fn may_acknowledge(&self) -> bool {
        self.store.session_fresh()
    }
}
