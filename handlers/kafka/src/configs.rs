//! Kafka configs as this handler serves them, shared by DescribeConfigs,
//! AlterConfigs and IncrementalAlterConfigs. Two topic configs are backed by
//! the host's topic policies and can be altered: `retention.ms` and
//! `retention.bytes` (an override set to [`UNSET`] inherits from the
//! namespace, then the broker). Every other config is a fixed description of
//! how this broker behaves, read-only.

use polyport_handler_api::storage::{TopicPolicies, UNSET};

use crate::{apis::RequestContext, errors};

/// Resource type TOPIC.
pub const RESOURCE_TOPIC: i8 = 2;
/// Resource type BROKER.
pub const RESOURCE_BROKER: i8 = 4;

/// Config source: a topic's own override.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
/// Config source: the broker's configuration file.
pub const SOURCE_STATIC_BROKER: i8 = 4;
/// Config source: the default.
pub const SOURCE_DEFAULT: i8 = 5;

/// Config type BOOLEAN (DescribeConfigs v3+).
pub const TYPE_BOOLEAN: i8 = 1;
/// Config type STRING.
pub const TYPE_STRING: i8 = 2;
/// Config type INT.
pub const TYPE_INT: i8 = 3;
/// Config type LONG.
pub const TYPE_LONG: i8 = 5;
/// Config type LIST.
pub const TYPE_LIST: i8 = 7;

/// A refused change or lookup: a Kafka error code and a message for the client.
pub type Refusal = (i16, String);

/// The topic configs that can be altered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alterable {
    /// `retention.ms`: how long data is kept, in ms (-1: forever).
    RetentionMs,
    /// `retention.bytes`: how much data a partition keeps (-1: no limit).
    RetentionBytes,
}

impl Alterable {
    /// Every alterable config.
    pub const ALL: [Self; 2] = [Self::RetentionMs, Self::RetentionBytes];

    /// Its Kafka name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RetentionMs => "retention.ms",
            Self::RetentionBytes => "retention.bytes",
        }
    }

    /// The config named `name`, if it can be altered.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Its value in `policies` ([`UNSET`]: inherited).
    pub fn get(self, policies: &TopicPolicies) -> i64 {
        match self {
            Self::RetentionMs => policies.retention_ms,
            Self::RetentionBytes => policies.retention_bytes,
        }
    }

    /// Sets it in `policies` ([`UNSET`]: inherit).
    pub fn set(self, policies: &mut TopicPolicies, value: i64) {
        match self {
            Self::RetentionMs => policies.retention_ms = value,
            Self::RetentionBytes => policies.retention_bytes = value,
        }
    }

    /// Parses a value for it: an integer, at least -1.
    pub fn parse(self, value: &str) -> Result<i64, Refusal> {
        match value.trim().parse::<i64>() {
            Ok(v) if v >= -1 => Ok(v),
            _ => Err((
                errors::INVALID_CONFIG,
                format!("invalid value {value:?} for {}: an integer, -1 or more, is needed", self.name()),
            )),
        }
    }
}

/// The refusal for a config name that cannot be altered.
pub fn not_alterable(name: &str) -> Refusal {
    (
        errors::INVALID_CONFIG,
        format!("config {name} is not supported: only retention.ms and retention.bytes can be altered"),
    )
}

/// The refusal for a config named twice in one resource.
pub fn duplicate(name: &str) -> Refusal {
    (errors::INVALID_REQUEST, format!("config {name} is named more than once"))
}

/// The refusal for a config given without a value.
pub fn null_value(name: &str) -> Refusal {
    (errors::INVALID_REQUEST, format!("config {name} has a null value"))
}

/// Kafka topic configs that tune how Kafka lays out, flushes, replicates or
/// compacts its log files, all of which the ledger replaces (or which do
/// nothing under `cleanup.policy=delete`): accepted when a topic is created,
/// because applications such as Kafka Streams set them on the topics they
/// create, and not applied (the creation logs them).
const NOT_APPLIED: &[&str] = &[
    "segment.bytes",
    "segment.ms",
    "segment.jitter.ms",
    "segment.index.bytes",
    "index.interval.bytes",
    "flush.messages",
    "flush.ms",
    "file.delete.delay.ms",
    "preallocate",
    "unclean.leader.election.enable",
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
    "message.downconversion.enable",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "delete.retention.ms",
];

/// What the configs of a CreateTopics topic ask for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NewTopicConfigs {
    /// The alterable configs to set once the topic exists.
    pub set: Vec<(Alterable, i64)>,
    /// Configs accepted and not applied ([`NOT_APPLIED`]), as `name=value`.
    pub not_applied: Vec<String>,
}

/// Checks the configs a CreateTopics request gives a topic: `retention.ms`
/// and `retention.bytes` are set; `cleanup.policy`, `compression.type`,
/// `max.message.bytes`, `message.timestamp.type` and `min.insync.replicas`
/// are accepted only with the value this broker has anyway (what
/// DescribeConfigs shows); the storage tuning configs of [`NOT_APPLIED`]
/// are accepted and not applied. Anything else, as in Kafka, refuses the
/// topic with INVALID_CONFIG: a topic must not be created with a behaviour
/// its application asked for and does not get (e.g. compaction).
pub fn for_new_topic<'a>(
    max_message_bytes: i64,
    timestamp_type: &str,
    configs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<NewTopicConfigs, Refusal> {
    let mut seen = std::collections::HashSet::new();
    let mut out = NewTopicConfigs::default();
    for (name, value) in configs {
        if !seen.insert(name) {
            return Err(duplicate(name));
        }
        let value = value.ok_or_else(|| null_value(name))?;
        let v = value.trim();
        let fixed = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err((errors::INVALID_CONFIG, format!("{name}={value} is not supported: {what}")))
            }
        };
        if let Some(a) = Alterable::from_name(name) {
            out.set.push((a, a.parse(value)?));
            continue;
        }
        match name {
            "cleanup.policy" => fixed(v.eq_ignore_ascii_case("delete"), "topics are never compacted (delete only)")?,
            "compression.type" => fixed(
                v.eq_ignore_ascii_case("producer"),
                "batches are stored as their producer compressed them (producer only)",
            )?,
            "max.message.bytes" => fixed(
                v.parse::<i64>() == Ok(max_message_bytes),
                &format!("the limit is the broker's maxMessageSize, {max_message_bytes}, for every topic"),
            )?,
            "message.timestamp.type" => fixed(
                v == timestamp_type,
                &format!("the broker's kafkaMessageTimestampType, {timestamp_type}, applies to every topic"),
            )?,
            "min.insync.replicas" => fixed(v == "1", "a single broker keeps one replica (1 only)")?,
            _ if NOT_APPLIED.contains(&name) => out.not_applied.push(format!("{name}={value}")),
            _ => {
                return Err((
                    errors::INVALID_CONFIG,
                    format!("unknown or unsupported topic config {name}; docs/configuration.md lists those served"),
                ))
            }
        }
    }
    Ok(out)
}

/// Alters the configs of a topic resource: checks the resource type, computes
/// the changes (`changes`, only for a topic), then, with the topic's current
/// overrides, the new ones (`replace`: start from no retention overrides, as
/// the legacy AlterConfigs does; else start from the current ones), and sets
/// them unless `validate_only`.
pub async fn alter_topic(
    ctx: &RequestContext<'_>,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    replace: bool,
    changes: impl FnOnce() -> Result<Vec<(Alterable, i64)>, Refusal>,
) -> Result<(), Refusal> {
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return Err((errors::INVALID_REQUEST, "broker configs are read-only; set them in broker.conf".to_owned()))
        }
        other => {
            return Err((
                errors::INVALID_REQUEST,
                format!("resource type {other} is not supported: only topic (2) configs can be altered"),
            ))
        }
    }
    let changes = changes()?;
    let pulsar = ctx.shared.topics.pulsar(name).map_err(|code| (code, format!("invalid topic name {name:?}")))?;
    let host = ctx.host().ok_or((errors::KAFKA_STORAGE_ERROR, "no storage".to_owned()))?;
    let current = host.topic_config(&pulsar).await.map_err(|e| (errors::from_handler(&e), e.message().to_owned()))?;
    let mut policies = current.overrides;
    if replace {
        for a in Alterable::ALL {
            a.set(&mut policies, UNSET);
        }
    }
    for (a, value) in changes {
        a.set(&mut policies, value);
    }
    if validate_only || policies == current.overrides {
        return Ok(());
    }
    host.set_topic_policies(&pulsar, policies).await.map_err(|e| (errors::from_handler(&e), e.message().to_owned()))?;
    let shown = |v: i64| if v == UNSET { "inherited".to_owned() } else { v.to_string() };
    tracing::info!(
        topic = %pulsar,
        retention_ms = %shown(policies.retention_ms),
        retention_bytes = %shown(policies.retention_bytes),
        "topic configs altered"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_integers_of_minus_one_or_more() {
        assert_eq!(Alterable::RetentionMs.parse("86400000"), Ok(86_400_000));
        assert_eq!(Alterable::RetentionBytes.parse(" -1 "), Ok(-1));
        for bad in ["-2", "1h", "", "9223372036854775808"] {
            let (code, message) = Alterable::RetentionMs.parse(bad).expect_err(bad);
            assert_eq!(code, errors::INVALID_CONFIG);
            assert!(message.contains("retention.ms") && message.contains(bad), "{message}");
        }
        assert_eq!(Alterable::from_name("retention.bytes"), Some(Alterable::RetentionBytes));
        assert_eq!(Alterable::from_name("cleanup.policy"), None);
        let mut p = TopicPolicies::default();
        Alterable::RetentionMs.set(&mut p, 5);
        assert_eq!((Alterable::RetentionMs.get(&p), Alterable::RetentionBytes.get(&p)), (5, UNSET));
    }

    #[test]
    fn a_new_topic_gets_retention_and_nothing_it_would_not_have() {
        let ok = for_new_topic(
            1024,
            "CreateTime",
            [
                ("retention.ms", Some("60000")),
                ("cleanup.policy", Some("delete")),
                ("segment.bytes", Some("1048576")),
                ("max.message.bytes", Some("1024")),
                ("min.insync.replicas", Some("1")),
                ("message.timestamp.type", Some("CreateTime")),
            ],
        );
        assert_eq!(
            ok,
            Ok(NewTopicConfigs {
                set: vec![(Alterable::RetentionMs, 60_000)],
                not_applied: vec!["segment.bytes=1048576".to_owned()]
            })
        );
        for (bad, code, says) in [
            (("cleanup.policy", Some("compact")), errors::INVALID_CONFIG, "never compacted"),
            (("max.message.bytes", Some("2048")), errors::INVALID_CONFIG, "maxMessageSize, 1024"),
            (("retention.bytes", Some("lots")), errors::INVALID_CONFIG, "retention.bytes"),
            (
                ("no.such.config", Some("1")),
                errors::INVALID_CONFIG,
                "unknown or unsupported topic config no.such.config",
            ),
            (("retention.ms", None), errors::INVALID_REQUEST, "null value"),
        ] {
            let (c, message) = for_new_topic(1024, "CreateTime", [bad]).expect_err(says);
            assert_eq!(c, code, "{message}");
            assert!(message.contains(says), "{message}");
        }
        let (c, _) = for_new_topic(1024, "CreateTime", [("retention.ms", Some("1")), ("retention.ms", Some("2"))])
            .expect_err("twice");
        assert_eq!(c, errors::INVALID_REQUEST);
    }
}
