//! The metrics service of handler-api: what handlers declare, kept in the
//! host's registry so `/metrics` exposes them with the host's own.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RResult, RSlice, RStr},
};
use polyport_handler_api::{
    metrics::{FfiCollectorBox, FfiMetric, FfiMetricBox, FfiMetric_TO, FfiSeries, FfiSeriesBox, FfiSeries_TO},
    ErrorKind, HandlerError, MetricKind, MetricSpec,
};
use prometheus::{
    core::Collector, proto::MetricFamily, CounterVec, GaugeVec, HistogramOpts, HistogramVec, Opts, Registry,
};

/// Buckets of a histogram declared without any (milliseconds-scaled, as KoP's latencies).
const DEFAULT_BUCKETS: &[f64] = &[0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0];

/// The prefixes of the broker's own metric names.
const BROKER_PREFIXES: &[&str] = &["pulsar_", "process_"];

#[derive(Clone)]
enum Family {
    Counter(CounterVec),
    Gauge(GaugeVec),
    Histogram(HistogramVec),
}

struct Declared {
    spec: MetricSpec,
    family: Family,
}

type Collectors = Vec<Arc<(MetricSpec, FfiCollectorBox)>>;

/// Handlers' metrics.
pub struct HandlerMetrics {
    registry: Registry,
    declared: Mutex<HashMap<String, Declared>>,
    collectors: Mutex<Collectors>,
}

fn invalid(message: String) -> HandlerError {
    HandlerError::new(ErrorKind::INVALID_ARGUMENT, message)
}

impl HandlerMetrics {
    pub(super) fn new(registry: Registry) -> Self {
        Self { registry, declared: Mutex::new(HashMap::new()), collectors: Mutex::new(Vec::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Declared>> {
        self.declared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn collectors(&self) -> std::sync::MutexGuard<'_, Collectors> {
        self.collectors.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `name` is the broker's own (its families are `pulsar_*` and
    /// `process_*`, some built only at a scrape) or a collector's.
    fn taken(&self, name: &str) -> bool {
        BROKER_PREFIXES.iter().any(|p| name.starts_with(p))
            || self.collectors().iter().any(|c| c.0.name.as_str() == name)
    }

    /// Declares `spec` (or returns the metric declared with the same spec).
    pub fn declare(&self, spec: MetricSpec) -> Result<FfiMetricBox, HandlerError> {
        let mut declared = self.lock();
        if let Some(existing) = declared.get(spec.name.as_str()) {
            if existing.spec.kind != spec.kind || existing.spec.labels != spec.labels {
                return Err(invalid(format!(
                    "metric {} is already declared with another kind or other labels",
                    spec.name
                )));
            }
            return Ok(handle(existing.family.clone()));
        }
        if self.taken(spec.name.as_str()) {
            return Err(invalid(format!("metric {} is the broker's own", spec.name)));
        }
        let labels: Vec<&str> = spec.labels.iter().map(|l| l.as_str()).collect();
        let (name, help) = (spec.name.as_str(), spec.help.as_str());
        let built = match spec.kind {
            MetricKind::COUNTER => CounterVec::new(Opts::new(name, help), &labels).map(Family::Counter),
            MetricKind::GAUGE => GaugeVec::new(Opts::new(name, help), &labels).map(Family::Gauge),
            MetricKind::HISTOGRAM => {
                let buckets = if spec.buckets.is_empty() { DEFAULT_BUCKETS.to_vec() } else { spec.buckets.to_vec() };
                HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), &labels).map(Family::Histogram)
            }
            other => return Err(invalid(format!("metric {name}: unknown kind {}", other.0))),
        };
        let family = built.map_err(|e| invalid(format!("metric {name}: {e}")))?;
        let registered = match &family {
            Family::Counter(c) => self.registry.register(Box::new(c.clone())),
            Family::Gauge(g) => self.registry.register(Box::new(g.clone())),
            Family::Histogram(h) => self.registry.register(Box::new(h.clone())),
        };
        registered.map_err(|e| invalid(format!("metric {name}: {e}")))?;
        declared.insert(spec.name.to_string(), Declared { spec, family: family.clone() });
        Ok(handle(family))
    }

    /// A counter with constant labels (the 0.2 `counter` slot).
    pub fn counter(&self, name: &str, help: &str, labels: &[(String, String)]) -> Result<FfiSeriesBox, HandlerError> {
        let names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        let metric = self.declare(MetricSpec::counter(name, help, &names))?;
        let values: Vec<RStr<'_>> = labels.iter().map(|(_, v)| RStr::from_str(v)).collect();
        metric.series(RSlice::from_slice(&values)).into_result()
    }

    /// Registers a handler's collector of `spec` (a gauge).
    pub fn add_collector(&self, spec: MetricSpec, collector: FfiCollectorBox) -> Result<(), HandlerError> {
        if spec.kind != MetricKind::GAUGE {
            return Err(invalid(format!("collector {}: only gauges are collected", spec.name)));
        }
        // Checked up front: a family that cannot be built would fail every scrape.
        let labels: Vec<&str> = spec.labels.iter().map(|l| l.as_str()).collect();
        GaugeVec::new(Opts::new(spec.name.as_str(), spec.help.as_str()), &labels)
            .map_err(|e| invalid(format!("collector {}: {e}", spec.name)))?;
        if self.lock().contains_key(spec.name.as_str()) || self.taken(spec.name.as_str()) {
            return Err(invalid(format!("metric {} is declared already", spec.name)));
        }
        self.collectors().push(Arc::new((spec, collector)));
        Ok(())
    }

    /// Runs every collector (each at most `deadline`) into metric families.
    pub async fn collect(&self, deadline: Duration) -> Vec<MetricFamily> {
        let collectors: Collectors = self.collectors().clone();
        let mut families = Vec::new();
        for collector in collectors {
            let name = collector.0.name.to_string();
            // Its own task: a panic in the handler's future stays there.
            let task = {
                let collector = Arc::clone(&collector);
                tokio::spawn(async move { collector.1.collect().await })
            };
            let samples = match tokio::time::timeout(deadline, task).await {
                Ok(Ok(samples)) => samples,
                Ok(Err(e)) => {
                    tracing::warn!(metric = %name, error = %e, "a handler's metrics collector failed");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(metric = %name, ?deadline, "a handler's metrics collector was too slow: skipped");
                    continue;
                }
            };
            let spec = &collector.0;
            let labels: Vec<&str> = spec.labels.iter().map(|l| l.as_str()).collect();
            let Ok(gauge) = GaugeVec::new(Opts::new(spec.name.as_str(), spec.help.as_str()), &labels) else {
                continue;
            };
            for sample in samples.iter() {
                let values: Vec<&str> = sample.labels.iter().map(|v| v.as_str()).collect();
                if let Ok(series) = gauge.get_metric_with_label_values(&values) {
                    series.set(sample.value);
                }
            }
            families.extend(gauge.collect());
        }
        families
    }
}

fn handle(family: Family) -> FfiMetricBox {
    FfiMetric_TO::from_ptr(RArc::new(FamilyHandle(family)), TD_Opaque)
}

#[derive(Clone)]
struct FamilyHandle(Family);

impl FfiMetric for FamilyHandle {
    fn series(&self, values: RSlice<'_, RStr<'_>>) -> RResult<FfiSeriesBox, HandlerError> {
        let values: Vec<&str> = values.iter().map(|v| v.as_str()).collect();
        let series = match &self.0 {
            Family::Counter(c) => c.get_metric_with_label_values(&values).map(Series::Counter),
            Family::Gauge(g) => g.get_metric_with_label_values(&values).map(Series::Gauge),
            Family::Histogram(h) => h.get_metric_with_label_values(&values).map(Series::Histogram),
        };
        match series {
            Ok(series) => RResult::ROk(FfiSeries_TO::from_ptr(RArc::new(series), TD_Opaque)),
            Err(e) => RResult::RErr(invalid(format!("metric series: {e}"))),
        }
    }
}

#[derive(Clone)]
enum Series {
    Counter(prometheus::Counter),
    Gauge(prometheus::Gauge),
    Histogram(prometheus::Histogram),
}

impl FfiSeries for Series {
    fn add(&self, value: f64) {
        match self {
            Self::Counter(c) if value > 0.0 => c.inc_by(value),
            Self::Gauge(g) => g.add(value),
            _ => {}
        }
    }

    fn set(&self, value: f64) {
        if let Self::Gauge(g) = self {
            g.set(value);
        }
    }

    fn observe(&self, value: f64) {
        if let Self::Histogram(h) = self {
            h.observe(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus::Encoder;

    use super::*;

    #[test]
    fn a_name_is_declared_once_per_kind_and_labels() {
        let metrics = HandlerMetrics::new(Registry::new());
        let spec = MetricSpec::counter("kop_server_test_total", "t", &["request"]);
        let a = metrics.declare(spec.clone()).expect("declared");
        let b = metrics.declare(spec).expect("declared again");
        let values = [RStr::from_str("Produce")];
        a.series(RSlice::from_slice(&values)).expect("series").add(2.0);
        b.series(RSlice::from_slice(&values)).expect("series").add(1.0);
        let text = {
            let mut out = Vec::new();
            prometheus::TextEncoder::new().encode(&metrics.registry.gather(), &mut out).expect("encoded");
            String::from_utf8(out).expect("UTF-8")
        };
        assert!(text.contains("kop_server_test_total{request=\"Produce\"} 3"), "{text}");
        let clash = metrics.declare(MetricSpec::gauge("kop_server_test_total", "t", &["request"]));
        assert_eq!(clash.err().map(|e| e.kind()), Some(ErrorKind::INVALID_ARGUMENT));
        let bad = metrics.declare(MetricSpec::counter("bad name", "t", &[]));
        assert!(bad.is_err());
        let broker_own = metrics.declare(MetricSpec::gauge("pulsar_topics_count", "t", &[]));
        assert_eq!(broker_own.err().map(|e| e.kind()), Some(ErrorKind::INVALID_ARGUMENT));
        let wrong_arity = a.series(RSlice::from_slice(&[])).into_result();
        assert!(wrong_arity.is_err());
    }
}
