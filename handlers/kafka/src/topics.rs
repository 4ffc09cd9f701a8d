//! Kafka topic names to Pulsar topics (as KoP maps them):
//! `t` is `persistent://<kafkaTenant>/<kafkaNamespace>/t`, `tenant/ns/t` and
//! `persistent://tenant/ns/t` are taken as they are, and Kafka partition N of
//! a partitioned topic is the ledger `…/t-partition-N`. A non-partitioned
//! Pulsar topic is a Kafka topic with one partition, 0, the topic itself.

use std::{collections::HashMap, sync::Mutex};

use polyport_handler_api::{storage::OpenOptions, ErrorKind, HandlerError, Host, Partition};

use crate::{configs::TopicSettings, errors};

/// Maps names and caches partition counts and topic settings.
#[derive(Debug)]
pub struct TopicMapper {
    /// `kafkaTenant/kafkaNamespace`.
    namespace: String,
    /// Pulsar topic → partition count (0: non-partitioned), the topic's
    /// settings, and when they were read (host monotonic ms), as last seen
    /// (forgotten when this handler changes them; in a cluster, where other
    /// brokers change them too, read again after [`CLUSTER_CACHE_MS`]).
    partitions: Mutex<HashMap<String, (u32, TopicSettings, u64)>>,
    /// Ledger name → its open handle, opened on first use and kept: a
    /// produce then crosses the boundary once per partition (its append).
    handles: Mutex<HashMap<String, Partition>>,
}

/// How long a cached partition count and settings are trusted in a cluster.
pub const CLUSTER_CACHE_MS: u64 = 5_000;

/// Kafka's rule for topic names: letters, digits, '.', '_', '-'; at most 249.
fn legal_kafka_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl TopicMapper {
    /// A mapper for `tenant/namespace`.
    pub fn new(namespace: String) -> Self {
        Self { namespace, partitions: Mutex::new(HashMap::new()), handles: Mutex::new(HashMap::new()) }
    }

    /// The Pulsar topic for a Kafka topic name, or INVALID_TOPIC_EXCEPTION.
    pub fn pulsar(&self, kafka: &str) -> Result<String, i16> {
        if let Some(rest) = kafka.strip_prefix("persistent://") {
            let parts: Vec<&str> = rest.split('/').collect();
            return match parts.as_slice() {
                [_, _, local] if legal_kafka_name(local) => Ok(kafka.to_owned()),
                _ => Err(errors::INVALID_TOPIC_EXCEPTION),
            };
        }
        let parts: Vec<&str> = kafka.split('/').collect();
        match parts.as_slice() {
            [local] if legal_kafka_name(local) => Ok(format!("persistent://{}/{local}", self.namespace)),
            [tenant, ns, local] if legal_kafka_name(local) && !tenant.is_empty() && !ns.is_empty() => {
                Ok(format!("persistent://{kafka}"))
            }
            _ => Err(errors::INVALID_TOPIC_EXCEPTION),
        }
    }

    /// How a Pulsar topic of the default namespace is listed to Kafka clients.
    pub fn kafka_name(&self, pulsar: &str) -> String {
        let prefix = format!("persistent://{}/", self.namespace);
        match pulsar.strip_prefix(&prefix) {
            Some(local) => local.to_owned(),
            None => pulsar.strip_prefix("persistent://").unwrap_or(pulsar).to_owned(),
        }
    }

    /// The namespace Kafka topics live in by default.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Partition count of `pulsar` (0: non-partitioned), from the cache or the
    /// host; a Kafka error code if it cannot be had.
    pub async fn partitions(&self, host: &Host, pulsar: &str, auto_create: bool) -> Result<u32, i16> {
        self.lookup(host, pulsar, auto_create).await.map(|(n, _)| n)
    }

    /// Partition count and settings of `pulsar`, from the cache or the host.
    async fn lookup(&self, host: &Host, pulsar: &str, auto_create: bool) -> Result<(u32, TopicSettings), i16> {
        let now = host.monotonic().as_millis() as u64;
        // Standalone (node 0), only this handler changes a topic.
        let clustered = host.node_id() != 0;
        if let Some(&(n, settings, at)) = self.lock().get(pulsar) {
            if !clustered || now.saturating_sub(at) < CLUSTER_CACHE_MS {
                return Ok((n, settings));
            }
        }
        let n = host.partitioned_metadata(pulsar, auto_create).await.map_err(|e| errors::from_handler(&e))?;
        let settings = crate::configs::settings(host, pulsar).await;
        self.lock().insert(pulsar.to_owned(), (n, settings, now));
        Ok((n, settings))
    }

    /// The handle of `ledger` (a partition or a non-partitioned topic),
    /// from the cache or opened now. `auto_create` applies when it is opened
    /// (a produce's); a handle opened by a read does not recreate a deleted
    /// topic, so a produce to it fails once, the client retries, and the
    /// handle opened then does.
    pub async fn partition(&self, host: &Host, ledger: &str, auto_create: bool) -> Result<Partition, HandlerError> {
        if let Some(open) = self.handles().get(ledger) {
            return Ok(open.clone());
        }
        let open = host.open_partition(ledger, OpenOptions { auto_create, wait_ms: 0 }).await?;
        self.handles().insert(ledger.to_owned(), open.clone());
        Ok(open)
    }

    /// Forgets what is cached of `pulsar` (after create, delete, or a
    /// NOT_FOUND): its partition count, settings and partition handles.
    pub fn forget(&self, pulsar: &str) {
        self.lock().remove(pulsar);
        let partition_prefix = format!("{pulsar}-partition-");
        self.handles().retain(|ledger, _| ledger != pulsar && !ledger.starts_with(&partition_prefix));
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, HashMap<String, Partition>> {
        self.handles.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets `pulsar` if `kind` says the topic is gone.
    pub fn forget_if_missing(&self, pulsar: &str, kind: ErrorKind) {
        if kind == ErrorKind::NOT_FOUND || kind == ErrorKind::INVALID_ARGUMENT {
            self.forget(pulsar);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, TopicSettings, u64)>> {
        self.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A Kafka topic resolved for one request: its Pulsar topic, partition
/// count and settings, or the Kafka error every one of its partitions gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved(Result<(String, u32, TopicSettings), i16>);

impl Resolved {
    /// A topic not resolved, every partition of which answers `code` (a
    /// topic the role may not use is not looked up, so not created).
    pub fn error(code: i16) -> Self {
        Self(Err(code))
    }

    /// The ledger of Kafka partition `index`, or the error code for it.
    pub fn ledger(&self, index: i32) -> Result<String, i16> {
        match &self.0 {
            Ok((pulsar, n, _)) => partition_name(pulsar, *n, index).ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION),
            Err(code) => Err(*code),
        }
    }

    /// The Pulsar topic and its partition count (0: non-partitioned).
    pub fn topic(&self) -> Result<(&str, u32), i16> {
        self.0.as_ref().map(|(p, n, _)| (p.as_str(), *n)).map_err(|c| *c)
    }

    /// The topic's own settings (none where it has none, or it is not resolved).
    pub fn settings(&self) -> TopicSettings {
        self.0.as_ref().map(|(_, _, s)| *s).unwrap_or_default()
    }
}

impl TopicMapper {
    /// Resolves Kafka topic `kafka` (creating it if `auto_create` and the
    /// broker allows); without a host every partition gets KAFKA_STORAGE_ERROR.
    pub async fn resolve(&self, host: Option<&Host>, kafka: &str, auto_create: bool) -> Resolved {
        Resolved(match (self.pulsar(kafka), host) {
            (Err(code), _) => Err(code),
            (Ok(_), None) => Err(errors::KAFKA_STORAGE_ERROR),
            (Ok(pulsar), Some(host)) => self.lookup(host, &pulsar, auto_create).await.map(|(n, s)| (pulsar, n, s)),
        })
    }
}

/// The ledger holding Kafka partition `index` of `pulsar` with `partitions`.
pub fn partition_name(pulsar: &str, partitions: u32, index: i32) -> Option<String> {
    if partitions == 0 {
        (index == 0).then(|| pulsar.to_owned())
    } else {
        u32::try_from(index).ok().filter(|i| *i < partitions).map(|i| format!("{pulsar}-partition-{i}"))
    }
}

/// Kafka partition count of a topic with `partitions` (0: non-partitioned = 1).
pub fn kafka_partitions(partitions: u32) -> u32 {
    partitions.max(1)
}

/// A stable topic id derived from the name (Metadata v10+ carries ids).
pub fn topic_id(pulsar: &str) -> uuid::Uuid {
    let a = crc32c::crc32c(pulsar.as_bytes());
    let b = crc32c::crc32c_append(a, b"polyport");
    let c = crc32c::crc32c_append(b, pulsar.as_bytes());
    let d = crc32c::crc32c_append(c, b"topic-id");
    let mut bytes = [0u8; 16];
    for (i, word) in [a, b, c, d].iter().enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    uuid::Uuid::from_bytes(bytes)
}

/// Whether `s` is a valid tenant or namespace name (the host's rule).
pub fn valid_name_segment(s: &str) -> bool {
    s != "."
        && s != ".."
        && !s.is_empty()
        && s.len() <= 255
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | ':'))
}

#[cfg(test)]
mod tests {
    use polyport_handler_api::{bytes::Bytes, storage::NewEntry, testing::MemoryHost};

    use super::*;

    #[tokio::test]
    async fn partition_handles_are_kept_and_forgotten_with_their_topic() {
        let host = MemoryHost::new().host();
        let m = TopicMapper::new("public/default".into());
        let pulsar = m.pulsar("clicks").expect("name");
        host.create_topic(&pulsar, 2).await.expect("create");
        let ledger = partition_name(&pulsar, 2, 1).expect("partition 1");
        let first = m.partition(&host, &ledger, false).await.expect("open");
        let entry = NewEntry { payload: Bytes::from_static(b"x"), count: 1, format: 1, flags: 0, max_timestamp_ms: -1 };
        first.append(vec![entry.clone()], true).await.expect("append");
        // The same handle comes back: it sees what the first one appended.
        let again = m.partition(&host, &ledger, false).await.expect("cached");
        assert_eq!(again.range().await.expect("range").end, 1);
        assert!(m.partition(&host, &format!("{pulsar}-partition-2"), false).await.is_err(), "no partition 2");
        // A deleted topic's handles are dropped with its cached metadata; a
        // kept handle answers NOT_FOUND.
        host.delete_topic(&pulsar).await.expect("delete");
        assert_eq!(again.range().await.map(|_| ()).expect_err("fails").kind(), ErrorKind::NOT_FOUND);
        m.forget(&pulsar);
        assert_eq!(
            m.partition(&host, &ledger, false).await.map(|_| ()).expect_err("fails").kind(),
            ErrorKind::NOT_FOUND
        );
        host.create_topic(&pulsar, 2).await.expect("create again");
        let fresh = m.partition(&host, &ledger, false).await.expect("reopened");
        assert_eq!(fresh.append(vec![entry], true).await.expect("append").appended[0].base_offset, 0);
    }

    #[test]
    fn names_map_as_kop_does() {
        let m = TopicMapper::new("public/default".into());
        assert_eq!(m.pulsar("orders").as_deref(), Ok("persistent://public/default/orders"));
        assert_eq!(m.pulsar("t/ns/orders").as_deref(), Ok("persistent://t/ns/orders"));
        assert_eq!(m.pulsar("persistent://t/ns/orders").as_deref(), Ok("persistent://t/ns/orders"));
        assert!(m.pulsar("a/b").is_err());
        assert!(m.pulsar("bad name").is_err());
        assert_eq!(m.kafka_name("persistent://public/default/orders"), "orders");
        assert_eq!(m.kafka_name("persistent://t/ns/orders"), "t/ns/orders");
        assert_eq!(partition_name("p", 0, 0).as_deref(), Some("p"));
        assert_eq!(partition_name("p", 0, 1), None);
        assert_eq!(partition_name("p", 3, 2).as_deref(), Some("p-partition-2"));
        assert_eq!(partition_name("p", 3, 3), None);
        assert_eq!(topic_id("x"), topic_id("x"));
        assert_ne!(topic_id("x"), topic_id("y"));
    }
}
