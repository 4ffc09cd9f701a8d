//! Retention and TTL, checked every `retentionCheckIntervalInSeconds`.
//!
//! Only whole sealed segments are deleted, oldest first, and only when both
//! hold: every durable cursor has consumed the segment (its mark-delete is at
//! or past the segment's end; with no durable cursor, data counts as
//! consumed), and retention no longer requires it — it is older than the
//! retention time, or the log is over the retention size (Kafka's "either
//! limit"). A TTL ("unless retention says so") first acknowledges, on every
//! durable cursor, whole segments whose last append is older than the TTL.

use std::sync::Arc;

use polyport_ledger::ManagedLedger;

use super::{Policies, TopicName, Topics};

/// Retention settings (broker defaults, or resolved for one topic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep consumed data this many ms; -1 forever; 0 delete once consumed.
    pub time_ms: i64,
    /// Keep at most this many bytes per partition; -1 no limit.
    pub size_bytes: i64,
    /// Acknowledge messages older than this many seconds; 0 never.
    pub ttl_seconds: i64,
}

fn minutes(m: i64) -> i64 {
    if m < 0 {
        -1
    } else {
        m.saturating_mul(60_000)
    }
}

fn megabytes(mb: i64) -> i64 {
    if mb < 0 {
        -1
    } else {
        mb.saturating_mul(1024 * 1024)
    }
}

impl RetentionPolicy {
    /// One level's explicit settings (ms and bytes take precedence over minutes and MB).
    fn level(p: &Policies) -> (Option<i64>, Option<i64>, Option<i64>) {
        (
            p.retention_ms.or(p.retention_time_in_minutes.map(minutes)),
            p.retention_bytes.or(p.retention_size_in_mb.map(megabytes)),
            p.message_ttl_in_seconds,
        )
    }

    /// Topic overrides, then namespace policies, then these defaults.
    pub fn resolve(&self, namespace: &Policies, topic: &Policies) -> Self {
        let (t, n) = (Self::level(topic), Self::level(namespace));
        Self {
            time_ms: t.0.or(n.0).unwrap_or(self.time_ms),
            size_bytes: t.1.or(n.1).unwrap_or(self.size_bytes),
            ttl_seconds: t.2.or(n.2).unwrap_or(self.ttl_seconds),
        }
    }

    /// The broker defaults from broker.conf (minutes, MB, seconds).
    pub fn from_config(time_minutes: i64, size_mb: i64, ttl_seconds: i64) -> Self {
        Self { time_ms: minutes(time_minutes), size_bytes: megabytes(size_mb), ttl_seconds }
    }
}

/// Applies `policy` to one ledger at time `now_ms`; returns the segments deleted.
pub fn enforce(ledger: &ManagedLedger, policy: RetentionPolicy, now_ms: i64) -> usize {
    let segments = ledger.segments();
    if policy.ttl_seconds > 0 {
        let cutoff = now_ms - policy.ttl_seconds * 1000;
        let expired_end =
            segments.iter().filter(|s| s.sealed && s.last_append_ms <= cutoff).map(|s| s.end_offset).max();
        if let Some(expired_end) = expired_end {
            for cursor in ledger.cursors().into_iter().filter(|c| c.durable && c.mark_delete < expired_end) {
                tracing::info!(ledger = %ledger.name(), cursor = %cursor.name, from = cursor.mark_delete, to = expired_end,
                    "message TTL expired: cursor moved past old segments");
                let _ = ledger.acknowledge(&cursor.name, &polyport_ledger::Ack::Cumulative(expired_end));
            }
        }
    }
    let consumed = ledger.slowest_durable_cursor().unwrap_or(u64::MAX);
    let mut total: i64 = segments.iter().map(|s| s.bytes as i64).sum();
    let limit_bytes = policy.size_bytes;
    let mut cut = None;
    for s in segments.iter().filter(|s| s.sealed) {
        if s.end_offset > consumed {
            break;
        }
        let by_time = policy.time_ms >= 0 && now_ms - s.last_append_ms >= policy.time_ms;
        // As Pulsar and Kafka: a segment goes by size only if what remains
        // after it is still at least the limit (the limit is what is kept).
        let by_size = policy.size_bytes >= 0 && total - s.bytes as i64 >= limit_bytes;
        if !(by_time || by_size) {
            break;
        }
        cut = Some(s.end_offset);
        total -= s.bytes as i64;
    }
    match cut.map(|offset| ledger.delete_segments_before(offset)) {
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            tracing::warn!(ledger = %ledger.name(), error = %e, "retention could not delete segments");
            0
        }
        None => 0,
    }
}

impl Topics {
    /// One retention pass over every partition of every topic (ledgers not
    /// used since start-up are opened for it).
    pub async fn enforce_retention(&self) {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        match self.all_partitions().await {
            Ok(partitions) => {
                for partition in partitions {
                    if let Err(e) = self.ledger(&partition, false).await {
                        tracing::warn!(topic = %partition, error = %e, "retention skips a topic it cannot open");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention cannot list topics"),
        }
        for ledger in self.open_ledgers() {
            let Ok(partition) = TopicName::parse(ledger.name()) else { continue };
            let base = partition.base();
            let namespace = self.namespace_policies(&base.namespace_path()).await.unwrap_or_default();
            let topic = self.record(&base).await.ok().flatten().map(|r| r.policies).unwrap_or_default();
            let policy = self.config.retention.resolve(&namespace, &topic);
            let ledger = Arc::clone(&ledger);
            let _ = tokio::task::spawn_blocking(move || enforce(&ledger, policy, now)).await;
        }
    }

    /// Runs [`Topics::enforce_retention`] every `retention_check_interval` until the topics are dropped.
    pub fn spawn_retention(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let interval = self.config.retention_check_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(topics) = weak.upgrade() else { return };
                topics.enforce_retention().await;
            }
        });
    }

    /// The effective retention of topic `name` (its overrides, its
    /// namespace's, the broker's), and its own overrides.
    pub async fn effective_policies(&self, name: &TopicName) -> Result<(RetentionPolicy, Policies), super::TopicError> {
        let record = self.record(name).await?.ok_or_else(|| super::TopicError::NotFound(name.to_string()))?;
        let namespace = self.namespace_policies(&name.namespace_path()).await?;
        Ok((self.config.retention.resolve(&namespace, &record.policies), record.policies))
    }

    /// Sets (`Some`) or removes (`None`) properties of topic `name`;
    /// returns the properties now in force.
    pub async fn update_properties(
        &self,
        name: &TopicName,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<std::collections::BTreeMap<String, String>, super::TopicError> {
        let record = self
            .update_record(name, move |record| {
                for (k, v) in &changes {
                    match v {
                        Some(v) => record.properties.insert(k.clone(), v.clone()),
                        None => record.properties.remove(k),
                    };
                }
            })
            .await?;
        Ok(record.properties)
    }

    /// Sets the retention and TTL overrides of topic `name`.
    pub async fn set_policies(&self, name: &TopicName, policies: Policies) -> Result<(), super::TopicError> {
        self.update_record(name, move |record| record.policies = policies.clone()).await.map(|_| ())
    }

    /// Changes topic `name`'s record with `change`, in one compare-and-set
    /// (read again and retried when another change got there first, so that
    /// changes to policies and to properties never undo each other).
    async fn update_record(
        &self,
        name: &TopicName,
        change: impl Fn(&mut super::TopicRecord) + Send + 'static,
    ) -> Result<super::TopicRecord, super::TopicError> {
        use crate::metadata::{Expect, MetadataError};
        let store = Arc::clone(&self.store);
        let key = super::topic_key(name);
        let topic = name.to_string();
        super::blocking(move || {
            for _ in 0..16 {
                let Some(current) = store.get(&key)? else { return Err(super::TopicError::NotFound(topic)) };
                let mut record: super::TopicRecord =
                    serde_json::from_slice(&current.value).map_err(|e| MetadataError::Store(format!("{key}: {e}")))?;
                change(&mut record);
                let bytes = serde_json::to_vec(&record).map_err(|e| MetadataError::Store(e.to_string()))?;
                match store.put(&key, &bytes, Expect::Version(current.version)) {
                    Ok(_) => return Ok(record),
                    Err(MetadataError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let message = format!("{topic}: its record changed under 16 updates in a row");
            Err(super::TopicError::Metadata(MetadataError::Store(message)))
        })
        .await?
    }
}
