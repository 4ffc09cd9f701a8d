//! Topic metrics under Pulsar's names, computed at each scrape from the
//! open ledgers: their counters ([`polyport_ledger::LedgerStats`]), segments
//! and cursors. One series per namespace (`cluster`, `namespace` labels), or
//! per topic partition (and `topic`) with `exposeTopicLevelMetricsInPrometheus`.
//! Only partitions this broker has open are counted, as Pulsar counts the
//! topics a broker has loaded.

use std::collections::BTreeMap;

use prometheus::{core::Collector, proto::MetricFamily, GaugeVec, IntCounterVec, Opts};

use crate::topics::Topics;

#[derive(Default)]
struct Totals {
    topics: u64,
    subscriptions: u64,
    producers: i64,
    consumers: i64,
    rate_in: f64,
    rate_out: f64,
    throughput_in: f64,
    throughput_out: f64,
    in_bytes: u64,
    in_messages: u64,
    out_bytes: u64,
    out_messages: u64,
    storage_size: u64,
    backlog: u64,
}

/// The families, as of now.
pub fn gather(topics: &Topics, cluster: &str, topic_level: bool) -> Vec<MetricFamily> {
    let mut totals: BTreeMap<(String, Option<String>), Totals> = BTreeMap::new();
    let mut subscription_backlogs = Vec::new();
    for (name, ledger) in topics.open_partitions() {
        if ledger.is_closed() {
            continue;
        }
        let namespace = name.namespace_path();
        let topic = topic_level.then(|| name.to_string());
        let stats = ledger.stats().snapshot();
        let cursors = ledger.cursors();
        let t = totals.entry((namespace.clone(), topic.clone())).or_default();
        t.topics += 1;
        t.subscriptions += cursors.len() as u64;
        t.producers += stats.producers;
        t.consumers += stats.consumers;
        t.rate_in += stats.rate_in;
        t.rate_out += stats.rate_out;
        t.throughput_in += stats.throughput_in;
        t.throughput_out += stats.throughput_out;
        t.in_bytes += stats.bytes_in;
        t.in_messages += stats.messages_in;
        t.out_bytes += stats.bytes_out;
        t.out_messages += stats.messages_out;
        t.storage_size += ledger.segments().iter().map(|s| s.bytes).sum::<u64>();
        t.backlog += cursors.iter().map(|c| c.backlog_messages).sum::<u64>();
        if let Some(topic) = topic {
            for cursor in &cursors {
                subscription_backlogs.push((
                    namespace.clone(),
                    topic.clone(),
                    cursor.name.clone(),
                    cursor.backlog_messages,
                ));
            }
        }
    }

    let labels: &[&str] = if topic_level { &["cluster", "namespace", "topic"] } else { &["cluster", "namespace"] };
    let gauge = |name: &str, help: &str, value: &dyn Fn(&Totals) -> f64| -> Vec<MetricFamily> {
        let Ok(family) = GaugeVec::new(Opts::new(name, help), labels) else { return Vec::new() };
        for ((namespace, topic), t) in &totals {
            let mut values = vec![cluster, namespace.as_str()];
            values.extend(topic.as_deref());
            if let Ok(series) = family.get_metric_with_label_values(&values) {
                series.set(value(t));
            }
        }
        family.collect()
    };
    let counter = |name: &str, help: &str, value: &dyn Fn(&Totals) -> u64| -> Vec<MetricFamily> {
        let Ok(family) = IntCounterVec::new(Opts::new(name, help), labels) else { return Vec::new() };
        for ((namespace, topic), t) in &totals {
            let mut values = vec![cluster, namespace.as_str()];
            values.extend(topic.as_deref());
            if let Ok(series) = family.get_metric_with_label_values(&values) {
                series.inc_by(value(t));
            }
        }
        family.collect()
    };

    let mut families = Vec::new();
    families.extend(gauge("pulsar_topics_count", "Topic partitions open on this broker", &|t| t.topics as f64));
    families.extend(gauge("pulsar_subscriptions_count", "Subscriptions (and Kafka groups' cursors)", &|t| {
        t.subscriptions as f64
    }));
    families.extend(gauge("pulsar_producers_count", "Connected Pulsar producers", &|t| t.producers as f64));
    families.extend(gauge("pulsar_consumers_count", "Connected Pulsar consumers", &|t| t.consumers as f64));
    families.extend(gauge("pulsar_rate_in", "Messages appended per second (last stats interval)", &|t| t.rate_in));
    families.extend(gauge("pulsar_rate_out", "Messages delivered per second (last stats interval)", &|t| t.rate_out));
    families
        .extend(gauge("pulsar_throughput_in", "Bytes appended per second (last stats interval)", &|t| t.throughput_in));
    families.extend(gauge("pulsar_throughput_out", "Bytes delivered per second (last stats interval)", &|t| {
        t.throughput_out
    }));
    families
        .extend(gauge("pulsar_storage_size", "Bytes stored (segments, headers included)", &|t| t.storage_size as f64));
    families.extend(gauge("pulsar_msg_backlog", "Messages not yet acknowledged, summed over subscriptions", &|t| {
        t.backlog as f64
    }));
    families
        .extend(counter("pulsar_in_bytes_total", "Payload bytes appended since the topic was loaded", &|t| t.in_bytes));
    families.extend(counter("pulsar_in_messages_total", "Messages appended since the topic was loaded", &|t| {
        t.in_messages
    }));
    families.extend(counter("pulsar_out_bytes_total", "Payload bytes delivered since the topic was loaded", &|t| {
        t.out_bytes
    }));
    families.extend(counter("pulsar_out_messages_total", "Messages delivered since the topic was loaded", &|t| {
        t.out_messages
    }));
    if topic_level {
        if let Ok(family) = GaugeVec::new(
            Opts::new("pulsar_subscription_back_log", "Messages a subscription has not acknowledged"),
            &["cluster", "namespace", "topic", "subscription"],
        ) {
            for (namespace, topic, subscription, backlog) in &subscription_backlogs {
                if let Ok(series) = family.get_metric_with_label_values(&[cluster, namespace, topic, subscription]) {
                    series.set(*backlog as f64);
                }
            }
            families.extend(family.collect());
        }
    }
    families
}
