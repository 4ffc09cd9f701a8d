//! A partition's manifest: which of its segments are in the object store,
//! and which ownership epoch wrote from which offset on. One JSON value per
//! partition in the metadata store (`/managed-ledgers/<tenant>/<ns>/<partition>`),
//! changed by compare-and-set on its version: once per sealed segment (never
//! per batch), once per new owner, once per retention pass that drops
//! segments.
//!
//! The epoch list is the fence for the object store: an owner adds its epoch
//! before it serves anything, and every later change checks that the last
//! epoch is still its own. A former owner (a paused process, a broker whose
//! session expired) fails that check, so it can neither add its late
//! segments nor remove anyone's.

use serde::{Deserialize, Serialize};

use crate::{
    metadata::{Expect, MetadataError, MetadataStore},
    topics::TopicName,
};

/// At most this many epochs are kept: only the last matters for fencing
/// and for deciding whether local data is still the log's tail; the others
/// are history for operators.
const EPOCHS_KEPT: usize = 16;

/// An ownership epoch and where the log stood when it began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochStart {
    /// The epoch: the owner key's creation revision in a cluster, a number
    /// allocated at start-up on a single broker.
    pub epoch: i64,
    /// The broker that owned the partition in it.
    pub broker: String,
    /// The log's end offset when it began: what it wrote starts there.
    pub start: u64,
}

/// One segment in the object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TieredSegment {
    /// Its ledger id (continued from owner to owner).
    pub ledger_id: u64,
    /// First offset.
    pub base_offset: u64,
    /// Offset after its last message.
    pub end_offset: u64,
    /// The segment header's creation time (with the two above, its identity).
    pub created_ms: i64,
    /// Bytes of the object.
    pub bytes: u64,
    /// Entries in it.
    pub entries: u64,
    /// Largest message timestamp.
    pub max_timestamp_ms: i64,
    /// The epoch that uploaded it.
    pub epoch: i64,
    /// Its object key.
    pub key: String,
    /// When it was uploaded, Unix ms (its local copies go
    /// `managedLedgerOffloadDeletionLagMs` later).
    #[serde(default)]
    pub offloaded_ms: i64,
}

impl TieredSegment {
    /// Its identity, as the ledger compares segment files.
    pub fn id(&self) -> polyport_ledger::tier::SegmentId {
        polyport_ledger::tier::SegmentId {
            ledger_id: self.ledger_id,
            base_offset: self.base_offset,
            created_ms: self.created_ms,
        }
    }
}

/// The active segment's part in the object store: uploaded every
/// `managedLedgerOffloadIntervalSeconds` as numbered chunks (each the bytes
/// appended since the previous one), so that a lost disk loses at most that
/// interval without rolling segments that often. Constant-size: chunk `i`
/// is object `<key_prefix>/<i>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tail {
    /// The segment's ledger id.
    pub ledger_id: u64,
    /// Its first offset.
    pub base_offset: u64,
    /// Its header's creation time.
    pub created_ms: i64,
    /// The epoch that uploaded the chunks.
    pub epoch: i64,
    /// Prefix of the chunks' object keys.
    pub key_prefix: String,
    /// Chunks uploaded: 0 to `chunks - 1`.
    pub chunks: u32,
    /// Bytes they hold together (the segment's header included).
    pub data_len: u64,
    /// Offset after the last record they hold.
    pub end_offset: u64,
}

impl Tail {
    /// The object key of chunk `i`.
    pub fn chunk_key(&self, i: u32) -> String {
        format!("{}/{i:06}", self.key_prefix)
    }
}

/// A partition's manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The creation time (ms) of the topic it belongs to: a manifest left by
    /// an earlier topic of the same name is not this one's.
    #[serde(default)]
    pub incarnation: i64,
    /// The log's first offset: records below it were deleted (retention,
    /// Kafka's DeleteRecords), even inside the first segment.
    #[serde(default)]
    pub start: u64,
    /// Ownership epochs, oldest first.
    #[serde(default)]
    pub epochs: Vec<EpochStart>,
    /// Tiered segments, contiguous, oldest first.
    #[serde(default)]
    pub segments: Vec<TieredSegment>,
    /// The active segment's chunks, once it has some (it continues the segments).
    #[serde(default)]
    pub tail: Option<Tail>,
}

impl Manifest {
    /// The epoch that owns the log now (the last to begin).
    pub fn last_epoch(&self) -> Option<i64> {
        self.epochs.last().map(|e| e.epoch)
    }

    /// The offset after the last tiered record, in a sealed segment or in
    /// the tail (0 if none).
    pub fn tiered_end(&self) -> u64 {
        let sealed = self.segments.last().map_or(0, |s| s.end_offset);
        self.tail.as_ref().map_or(sealed, |t| t.end_offset.max(sealed))
    }

    /// Adds an epoch, keeping the last 16.
    pub fn begin(&mut self, epoch: EpochStart) {
        self.epochs.push(epoch);
        let excess = self.epochs.len().saturating_sub(EPOCHS_KEPT);
        self.epochs.drain(..excess);
    }
}

/// The manifest's key for `partition`.
pub fn key(partition: &TopicName) -> String {
    format!("/managed-ledgers/{}/{}/{}", partition.tenant, partition.namespace, partition.file_name())
}

/// A manifest as read, with the version a change must compare against.
#[derive(Debug, Clone, Default)]
pub struct Versioned {
    /// The manifest (empty if absent).
    pub manifest: Manifest,
    /// Its version; `None`: absent.
    pub version: Option<u64>,
}

/// Reads `partition`'s manifest (blocking: the store's calls are synchronous).
pub fn read(store: &dyn MetadataStore, partition: &TopicName) -> Result<Versioned, super::TieringError> {
    let key = key(partition);
    match store.get(&key)? {
        None => Ok(Versioned::default()),
        Some(v) => {
            let manifest = serde_json::from_slice(&v.value)
                .map_err(|e| super::TieringError::Manifest { key: key.clone(), reason: e.to_string() })?;
            Ok(Versioned { manifest, version: Some(v.version) })
        }
    }
}

/// Writes `manifest` if the stored one is still at `version`; returns the new
/// version, or `Ok(None)` if it changed in between (read it again).
pub fn write(
    store: &dyn MetadataStore,
    partition: &TopicName,
    manifest: &Manifest,
    version: Option<u64>,
) -> Result<Option<u64>, super::TieringError> {
    let value = serde_json::to_vec(manifest)
        .map_err(|e| super::TieringError::Manifest { key: key(partition), reason: e.to_string() })?;
    let expect = version.map_or(Expect::Absent, Expect::Version);
    match store.put(&key(partition), &value, expect) {
        Ok(version) => Ok(Some(version)),
        Err(MetadataError::Conflict { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
