//! `/metrics`: Prometheus' text format, from the `prometheus` crate.
//!
//! Three sources, gathered at each scrape:
//! - the host's registry: process metrics (`process_*`: CPU, RSS, open
//!   files, start time), the storage latency histograms, and the metrics
//!   handlers declared through handler-api's metrics service
//!   ([`handlers`]);
//! - topic metrics under Pulsar's names ([`topics`]), computed from the
//!   open ledgers' counters and cursors: per namespace, or per topic
//!   partition with `exposeTopicLevelMetricsInPrometheus=true`;
//! - the gauges handlers compute when asked (a Kafka group's lag), awaited
//!   with a deadline so one slow handler cannot stall a scrape.
//!
//! Cardinality is bounded by what the broker serves: namespaces, and topics
//! only when the operator asks for them; no label comes from a value a
//! client chooses freely.

pub mod handlers;
pub mod topics;

use std::{sync::Arc, time::Duration};

use prometheus::{Encoder, Histogram, HistogramOpts, Registry, TextEncoder};

/// `/metrics` settings.
#[derive(Debug, Clone, Copy)]
pub struct MetricsConfig {
    /// `exposeTopicLevelMetricsInPrometheus`: one series per topic partition
    /// instead of per namespace.
    pub topic_level: bool,
    /// `statsUpdateFrequencyInSecs`: the interval over which rates are computed.
    pub stats_interval: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { topic_level: false, stats_interval: Duration::from_secs(60) }
    }
}

/// Pulsar's storage latency buckets (0.5 ms to 1 s), in seconds.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 1.0];

/// How long a scrape waits for a handler's collector.
const COLLECT_DEADLINE: Duration = Duration::from_secs(3);

/// The broker's metrics.
pub struct Metrics {
    registry: Registry,
    /// Time from an append's submission to its acknowledgement by the ledger.
    pub storage_write: Histogram,
    /// Time of a read from a ledger (cache or disk).
    pub storage_read: Histogram,
    /// What handlers declared.
    pub handlers: handlers::HandlerMetrics,
    config: MetricsConfig,
    cluster: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Metrics {
    /// The registry, with process and storage metrics.
    pub fn new(config: MetricsConfig, cluster: &str) -> Arc<Self> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            if let Err(e) = registry.register(Box::new(process)) {
                tracing::warn!(error = %e, "process metrics unavailable");
            }
        }
        let histogram = |name: &str, help: &str| {
            let opts = HistogramOpts::new(name, help).const_label("cluster", cluster).buckets(LATENCY_BUCKETS.to_vec());
            // The options are constant and valid; registration cannot clash in a new registry.
            let histogram = Histogram::with_opts(opts).expect("valid histogram options");
            let _ = registry.register(Box::new(histogram.clone()));
            histogram
        };
        let storage_write = histogram(
            "pulsar_storage_write_latency_seconds",
            "Time for an append to be acknowledged by the ledger (written, and synced as configured)",
        );
        let storage_read = histogram("pulsar_storage_read_latency_seconds", "Time for a read from a ledger");
        let handlers = handlers::HandlerMetrics::new(registry.clone());
        Arc::new(Self { registry, storage_write, storage_read, handlers, config, cluster: cluster.to_owned() })
    }

    /// The settings.
    pub fn config(&self) -> MetricsConfig {
        self.config
    }

    /// Everything, in Prometheus' text format.
    pub async fn render(&self, topics: &crate::topics::Topics) -> String {
        let mut families = self.registry.gather();
        families.extend(topics::gather(topics, &self.cluster, self.config.topic_level));
        families.extend(self.handlers.collect(COLLECT_DEADLINE).await);
        // The encoder refuses an empty family (a collector with nothing to report).
        families.retain(|f| !f.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Samples every open ledger's counters each `statsUpdateFrequencyInSecs`,
    /// so rates cover the last interval (as Pulsar's do), until `shutdown`.
    pub async fn sample_rates(
        topics: Arc<crate::topics::Topics>,
        interval: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            for ledger in topics.open_ledgers() {
                ledger.stats().sample(crate::topics::now_ms());
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}
