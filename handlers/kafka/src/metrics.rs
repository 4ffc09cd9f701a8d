//! The handler's metrics, exported by the host on `/metrics` through
//! handler-api's metrics service, under KoP's `kop_server_` prefix:
//!
//! - `kop_server_REQUESTS_total{request,version}` and
//!   `kop_server_REQUEST_ERRORS_total{request,version,error}` (counters):
//!   requests by API and version; errors by API, version and Kafka's name
//!   for the error: requests that do not decode or whose version is not
//!   served, and the partitions of Produce and Fetch answered with an error
//!   code;
//! - `kop_server_REQUEST_LATENCY{request}` (histogram, milliseconds, as
//!   KoP's): from a request's decoding to its response's encoding;
//! - `kop_server_BYTES_IN_total`, `kop_server_MESSAGE_IN_total`,
//!   `kop_server_BYTES_OUT_total`, `kop_server_MESSAGE_OUT_total`
//!   (counters): record batch bytes and records produced and fetched, per
//!   `namespace`, or per `topic` and `partition` as well with
//!   `exposeTopicLevelMetricsInPrometheus=true`;
//! - `kop_server_ALIVE_CHANNEL_COUNT` (gauge): open connections;
//! - collected at each scrape: `kop_server_GROUPS{state}` (groups by
//!   state) and `kop_server_CONSUMER_LAG{group,topic,partition}` (the log
//!   end offset minus the group's committed offset), at most
//!   [`MAX_LAG_SERIES`] series.
//!
//! Every label value comes from a bounded set: API names, error names,
//! the broker's namespaces and topics; group ids are the only client-chosen
//! value, and only groups that committed offsets have a lag.
//!
//! Without a host (unit tests, the in-process benchmark) or on a host
//! without the metrics service, every metric is disabled: no branch on the
//! hot paths, each update a no-op.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock, RwLock, Weak},
    time::Instant,
};

use kafka_protocol::messages::ApiKey;
use polyport_handler_api::{Host, Metric, MetricSpec, Sample, Series};

/// The most consumer-lag series one scrape reports.
pub const MAX_LAG_SERIES: usize = 10_000;

/// Latency buckets, milliseconds.
const LATENCY_MS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0];

/// Versions tracked per API (Kafka's APIs stay below 32 versions).
const VERSIONS: usize = 32;
/// API keys tracked (Kafka's reach the 70s).
const KEYS: usize = 128;

struct PerRequest {
    count: Series,
    latency: Series,
}

struct PerLedger {
    bytes: Series,
    messages: Series,
}

/// The handler's metrics.
pub struct KafkaMetrics {
    requests: Metric,
    errors: Metric,
    latency: Metric,
    bytes_in: Metric,
    messages_in: Metric,
    bytes_out: Metric,
    messages_out: Metric,
    /// Open connections.
    pub connections: Series,
    topic_level: bool,
    /// Kafka's names for topics (the `topic` label).
    mapper: crate::topics::TopicMapper,
    per_request: Vec<OnceLock<PerRequest>>,
    ins: RwLock<HashMap<String, Arc<PerLedger>>>,
    outs: RwLock<HashMap<String, Arc<PerLedger>>>,
}

impl std::fmt::Debug for KafkaMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaMetrics").field("topic_level", &self.topic_level).finish_non_exhaustive()
    }
}

fn declare(host: Option<&Host>, spec: MetricSpec) -> Metric {
    let Some(host) = host else { return Metric::disabled() };
    let name = spec.name.to_string();
    host.metric(spec).unwrap_or_else(|e| {
        tracing::warn!(metric = %name, error = %e, "metric not exported");
        Metric::disabled()
    })
}

/// Kafka's name for an error code (`CORRUPT_MESSAGE`), from the protocol
/// crate's names; a code it does not know is `code_N`.
pub fn error_name(code: i16) -> String {
    let Some(error) = kafka_protocol::ResponseError::try_from_code(code) else { return format!("code_{code}") };
    let camel = format!("{error:?}");
    // The crate's catch-all for codes it does not know (`Unknown(N)`).
    if camel.contains('(') {
        return format!("code_{code}");
    }
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `persistent://t/ns/topic-partition-N` → (`t/ns`, the topic as Kafka
/// clients name it, `N`); a non-partitioned topic is Kafka's partition 0.
fn split_ledger(ledger: &str, mapper: &crate::topics::TopicMapper) -> (String, String, String) {
    let path = ledger.strip_prefix("persistent://").unwrap_or(ledger);
    let namespace = path.rsplit_once('/').map_or("", |(ns, _)| ns).to_owned();
    match ledger.rsplit_once("-partition-") {
        Some((topic, n)) if n.parse::<u32>().is_ok() => (namespace, mapper.kafka_name(topic), n.to_owned()),
        _ => (namespace, mapper.kafka_name(ledger), "0".to_owned()),
    }
}

impl KafkaMetrics {
    /// Metrics that record nothing.
    pub fn disabled() -> Self {
        Self::declared(None, false, String::new())
    }

    fn declared(host: Option<&Host>, topic_level: bool, kafka_namespace: String) -> Self {
        let traffic: &[&str] = if topic_level { &["namespace", "topic", "partition"] } else { &["namespace"] };
        let counter = |name: &str, help: &str, labels: &[&str]| declare(host, MetricSpec::counter(name, help, labels));
        let connections =
            declare(host, MetricSpec::gauge("kop_server_ALIVE_CHANNEL_COUNT", "Open Kafka connections", &[]))
                .series(&[]);
        Self {
            requests: counter(
                "kop_server_REQUESTS_total",
                "Kafka requests by API and version",
                &["request", "version"],
            ),
            errors: counter(
                "kop_server_REQUEST_ERRORS_total",
                "Kafka errors by API, version and error: requests refused whole, and Produce and Fetch partitions",
                &["request", "version", "error"],
            ),
            latency: declare(
                host,
                MetricSpec::histogram(
                    "kop_server_REQUEST_LATENCY",
                    "Kafka request latency in milliseconds, from decoding to the encoded response",
                    &["request"],
                    LATENCY_MS,
                ),
            ),
            bytes_in: counter("kop_server_BYTES_IN_total", "Record batch bytes produced", traffic),
            messages_in: counter("kop_server_MESSAGE_IN_total", "Records produced", traffic),
            bytes_out: counter("kop_server_BYTES_OUT_total", "Record batch bytes fetched", traffic),
            messages_out: counter("kop_server_MESSAGE_OUT_total", "Records fetched", traffic),
            connections,
            topic_level,
            mapper: crate::topics::TopicMapper::new(kafka_namespace),
            per_request: (0..KEYS * VERSIONS).map(|_| OnceLock::new()).collect(),
            ins: RwLock::new(HashMap::new()),
            outs: RwLock::new(HashMap::new()),
        }
    }

    /// Declares the metrics on `host`, and the collectors that read
    /// `shared`'s groups at each scrape. `topic_level`: the host's
    /// `exposeTopicLevelMetricsInPrometheus`.
    pub fn register(host: &Host, topic_level: bool, shared: Weak<crate::connection::Shared>) -> Self {
        let namespace = shared.upgrade().map(|s| s.topics.namespace().to_owned()).unwrap_or_default();
        let metrics = Self::declared(Some(host), topic_level, namespace);
        let groups = Weak::clone(&shared);
        let spec = MetricSpec::gauge("kop_server_GROUPS", "Kafka consumer groups by state", &["state"]);
        if let Err(e) = host.register_collector(spec, move || group_states(Weak::clone(&groups))) {
            tracing::warn!(error = %e, "group metrics not exported");
        }
        let spec = MetricSpec::gauge(
            "kop_server_CONSUMER_LAG",
            "Records a group has not consumed: the partition's end offset minus the group's committed offset",
            &["group", "topic", "partition"],
        );
        if let Err(e) = host.register_collector(spec, move || consumer_lag(Weak::clone(&shared))) {
            tracing::warn!(error = %e, "consumer lag metrics not exported");
        }
        metrics
    }

    fn per_request(&self, api: ApiKey, version: i16) -> Option<&PerRequest> {
        let (key, version) = (usize::try_from(api as i16).ok()?, usize::try_from(version).ok()?);
        if key >= KEYS || version >= VERSIONS {
            return None;
        }
        Some(self.per_request[key * VERSIONS + version].get_or_init(|| {
            let name = format!("{api:?}");
            PerRequest {
                count: self.requests.series(&[&name, &version.to_string()]),
                latency: self.latency.series(&[&name]),
            }
        }))
    }

    /// One request of `api` at `version`, started at `started`.
    pub fn request(&self, api: ApiKey, version: i16, started: Instant) {
        if let Some(r) = self.per_request(api, version) {
            r.count.inc();
            r.latency.observe(started.elapsed().as_secs_f64() * 1000.0);
        }
    }

    /// A request refused whole (`error`: Kafka's name for it).
    pub fn error(&self, request: &str, version: i16, error: &str) {
        self.errors.series(&[request, &version.to_string(), error]).inc();
    }

    /// `count` partitions of a request of `api` answered with error `code`.
    pub fn partition_errors(&self, api: ApiKey, version: i16, code: i16, count: u64) {
        if count > 0 && code != crate::errors::NONE {
            self.errors.series(&[&format!("{api:?}"), &version.to_string(), &error_name(code)]).add(count as f64);
        }
    }

    fn per_ledger(
        &self,
        map: &RwLock<HashMap<String, Arc<PerLedger>>>,
        ledger: &str,
        bytes: &Metric,
        messages: &Metric,
    ) -> Arc<PerLedger> {
        if let Some(found) = map.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(ledger) {
            return Arc::clone(found);
        }
        let (namespace, topic, partition) = split_ledger(ledger, &self.mapper);
        let labels: Vec<&str> = if self.topic_level { vec![&namespace, &topic, &partition] } else { vec![&namespace] };
        let made = Arc::new(PerLedger { bytes: bytes.series(&labels), messages: messages.series(&labels) });
        let mut map = map.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(map.entry(ledger.to_owned()).or_insert(made))
    }

    /// Records produced to `ledger`.
    pub fn produced(&self, ledger: &str, messages: u64, bytes: u64) {
        let s = self.per_ledger(&self.ins, ledger, &self.bytes_in, &self.messages_in);
        s.bytes.add(bytes as f64);
        s.messages.add(messages as f64);
    }

    /// Records fetched from `ledger`.
    pub fn fetched(&self, ledger: &str, messages: u64, bytes: u64) {
        let s = self.per_ledger(&self.outs, ledger, &self.bytes_out, &self.messages_out);
        s.bytes.add(bytes as f64);
        s.messages.add(messages as f64);
    }
}

async fn group_states(shared: Weak<crate::connection::Shared>) -> Vec<Sample> {
    let Some(shared) = shared.upgrade() else { return Vec::new() };
    let Ok(groups) = shared.coordinator.list().await else { return Vec::new() };
    let mut by_state: HashMap<&str, u64> = HashMap::new();
    for g in &groups {
        *by_state.entry(g.state).or_default() += 1;
    }
    by_state.into_iter().map(|(state, n)| Sample::new(&[state], n as f64)).collect()
}

async fn consumer_lag(shared: Weak<crate::connection::Shared>) -> Vec<Sample> {
    let Some(shared) = shared.upgrade() else { return Vec::new() };
    let Some(host) = shared.host.get() else { return Vec::new() };
    let Ok(groups) = shared.coordinator.list().await else { return Vec::new() };
    let mut samples = Vec::new();
    let mut ends: HashMap<String, Option<u64>> = HashMap::new();
    for g in groups {
        let Ok(offsets) = shared.coordinator.fetch(&g.group, None).await else { continue };
        for ((topic, partition), committed) in offsets {
            let Some(committed) = committed.filter(|c| c.offset >= 0) else { continue };
            if !ends.contains_key(&committed.ledger) {
                let end = match shared.topics.partition(host, &committed.ledger, false).await {
                    Ok(p) => p.range().await.ok().map(|r| r.end),
                    Err(_) => None,
                };
                ends.insert(committed.ledger.clone(), end);
            }
            let Some(end) = ends.get(&committed.ledger).copied().flatten() else { continue };
            let lag = end.saturating_sub(u64::try_from(committed.offset).unwrap_or(0));
            let topic = shared.topics.kafka_name(&topic);
            samples.push(Sample::new(&[&g.group, &topic, &partition.to_string()], lag as f64));
            if samples.len() >= MAX_LAG_SERIES {
                tracing::warn!(limit = MAX_LAG_SERIES, "consumer lag: more series than the limit; the rest left out");
                return samples;
            }
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_names_split_into_kafka_labels() {
        let mapper = crate::topics::TopicMapper::new("public/default".into());
        assert_eq!(
            split_ledger("persistent://public/default/orders-partition-3", &mapper),
            ("public/default".into(), "orders".into(), "3".into())
        );
        assert_eq!(split_ledger("persistent://t/ns/plain", &mapper), ("t/ns".into(), "t/ns/plain".into(), "0".into()));
    }

    #[test]
    fn error_codes_have_kafkas_names() {
        assert_eq!(error_name(2), "CORRUPT_MESSAGE");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(29), "TOPIC_AUTHORIZATION_FAILED");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(31000), "code_31000");
    }

    #[test]
    fn disabled_metrics_take_updates() {
        let m = KafkaMetrics::disabled();
        m.request(ApiKey::Produce, 9, Instant::now());
        m.produced("persistent://public/default/t-partition-0", 3, 100);
        m.error("Produce", 9, "CORRUPT_MESSAGE");
        m.partition_errors(ApiKey::Produce, 9, 2, 1);
        m.connections.inc();
    }
}
