//! Kafka configs as this handler serves them, shared by CreateTopics,
//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
//!
//! - `retention.ms` and `retention.bytes` are the host's topic policies (an
//!   override set to [`UNSET`] inherits from the namespace, then the broker);
//! - `max.message.bytes`, `message.timestamp.type` and `compression.type`
//!   ([`Setting`]) are kept as the topic's properties (`kafka.<name>`), and
//!   Produce applies them ([`TopicSettings`]); unset, the broker's
//!   `maxMessageSize`, `kafkaMessageTimestampType` and `producer` apply;
//! - `min.insync.replicas` (1) and `unclean.leader.election.enable` are
//!   accepted at their single-broker meaning, and Kafka's log-file tuning
//!   configs (`NOT_APPLIED`), without effect;
//! - anything else is refused with INVALID_CONFIG naming it.

use polyport_handler_api::storage::{Operation, TopicPolicies, UNSET};

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

/// The property prefix of the topic configs kept as topic properties.
pub const PROPERTY_PREFIX: &str = "kafka.";

/// A topic config kept as a topic property, applied by Produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// `max.message.bytes`: the largest record batch the topic accepts.
    MaxMessageBytes,
    /// `message.timestamp.type`: `CreateTime` or `LogAppendTime`.
    TimestampType,
    /// `compression.type`: `producer`, or the codec batches are stored with.
    CompressionType,
}

impl Setting {
    /// Every setting.
    pub const ALL: [Self; 3] = [Self::MaxMessageBytes, Self::TimestampType, Self::CompressionType];

    /// Its Kafka name.
    pub fn name(self) -> &'static str {
        match self {
            Self::MaxMessageBytes => "max.message.bytes",
            Self::TimestampType => "message.timestamp.type",
            Self::CompressionType => "compression.type",
        }
    }

    /// The topic property that holds it.
    pub fn property(self) -> String {
        format!("{PROPERTY_PREFIX}{}", self.name())
    }

    /// The setting named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Checks a value and gives it as stored.
    pub fn parse(self, value: &str) -> Result<String, Refusal> {
        let v = value.trim();
        let ok = match self {
            Self::MaxMessageBytes => v.parse::<i32>().ok().filter(|n| *n >= 0).map(|n| n.to_string()),
            Self::TimestampType => ["CreateTime", "LogAppendTime"].into_iter().find(|t| *t == v).map(str::to_owned),
            Self::CompressionType => Codec::parse(v).map(|c| c.name().to_owned()),
        };
        ok.ok_or_else(|| {
            let expected = match self {
                Self::MaxMessageBytes => "a number of bytes, 0 or more",
                Self::TimestampType => "CreateTime or LogAppendTime",
                Self::CompressionType => "producer, uncompressed, gzip, snappy, lz4 or zstd",
            };
            (errors::INVALID_CONFIG, format!("invalid value {value:?} for {}: {expected}", self.name()))
        })
    }
}

/// `compression.type`: keep the producer's codec, or store with this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// As the producer sent it.
    Producer,
    /// No compression.
    Uncompressed,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Codec {
    const ALL: [Self; 6] = [Self::Producer, Self::Uncompressed, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];

    /// Its Kafka name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Producer => "producer",
            Self::Uncompressed => "uncompressed",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }

    /// The codec named `name` (as Kafka names them, any case).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The batch attribute bits (0-2) of this codec; `None` for `producer`.
    pub fn attribute(self) -> Option<i16> {
        match self {
            Self::Producer => None,
            Self::Uncompressed => Some(0),
            Self::Gzip => Some(1),
            Self::Snappy => Some(2),
            Self::Lz4 => Some(3),
            Self::Zstd => Some(4),
        }
    }
}

/// A topic's settings as Produce applies them; `None`: the broker's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicSettings {
    /// `max.message.bytes`.
    pub max_message_bytes: Option<usize>,
    /// `message.timestamp.type=LogAppendTime` (true) or `CreateTime` (false).
    pub log_append_time: Option<bool>,
    /// `compression.type`.
    pub compression: Option<Codec>,
    /// The topic has held transactional batches ([`crate::txn_index::MARK`]).
    pub transactional: bool,
}

impl TopicSettings {
    /// The settings among a topic's properties (unknown or bad ones ignored:
    /// they were checked when set).
    pub fn from_properties<'a>(properties: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut out = Self::default();
        for (key, value) in properties {
            if key == crate::txn_index::MARK {
                out.transactional = true;
                continue;
            }
            let Some(setting) = key.strip_prefix(PROPERTY_PREFIX).and_then(Setting::from_name) else { continue };
            match setting {
                Setting::MaxMessageBytes => out.max_message_bytes = value.parse().ok(),
                Setting::TimestampType => out.log_append_time = Some(value == "LogAppendTime"),
                Setting::CompressionType => out.compression = Codec::parse(value),
            }
        }
        out
    }

    /// The value of `setting` as stored, if the topic sets it.
    pub fn get(&self, setting: Setting) -> Option<String> {
        match setting {
            Setting::MaxMessageBytes => self.max_message_bytes.map(|n| n.to_string()),
            Setting::TimestampType => {
                self.log_append_time.map(|l| if l { "LogAppendTime" } else { "CreateTime" }.to_owned())
            }
            Setting::CompressionType => self.compression.map(|c| c.name().to_owned()),
        }
    }
}

/// One change a request asks of a topic's configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A retention policy (`UNSET`: inherit).
    Retention(Alterable, i64),
    /// A setting (`None`: back to the broker's).
    Setting(Setting, Option<String>),
    /// A config accepted without effect (`name=value`, logged).
    Accepted(String),
}

/// The change `name` = `value` asks for (`value` `None`: delete it, back to
/// its default), or why it is refused.
pub fn change(name: &str, value: Option<&str>) -> Result<Change, Refusal> {
    if let Some(a) = Alterable::from_name(name) {
        return Ok(Change::Retention(a, value.map_or(Ok(UNSET), |v| a.parse(v))?));
    }
    if let Some(s) = Setting::from_name(name) {
        return Ok(Change::Setting(s, value.map(|v| s.parse(v)).transpose()?));
    }
    if NOT_APPLIED.contains(&name) {
        return Ok(Change::Accepted(format!("{name}={}", value.unwrap_or("(default)"))));
    }
    let v = value.map(str::trim);
    let accepted = match name {
        "min.insync.replicas" => v.is_none_or(|v| v == "1"),
        "unclean.leader.election.enable" => {
            v.is_none_or(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"))
        }
        "cleanup.policy" => v.is_none_or(|v| v.eq_ignore_ascii_case("delete")),
        _ => {
            return Err((
                errors::INVALID_CONFIG,
                format!("unknown or unsupported topic config {name}; docs/configuration.md lists those served"),
            ))
        }
    };
    if !accepted {
        let why = match name {
            "min.insync.replicas" => "a single broker keeps one replica (1 only)",
            "cleanup.policy" => "topics are never compacted (delete only)",
            _ => "true or false",
        };
        return Err((errors::INVALID_CONFIG, format!("{name}={} is not supported: {why}", value.unwrap_or_default())));
    }
    Ok(Change::Accepted(format!("{name}={}", value.unwrap_or("(default)"))))
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
/// nothing under `cleanup.policy=delete`): accepted, at creation or altered,
/// because applications such as Kafka Streams set them on the topics they
/// create, and not applied (logged).
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
    /// The changes to make once the topic exists.
    pub changes: Vec<Change>,
    /// Configs accepted and not applied, as `name=value`.
    pub not_applied: Vec<String>,
}

/// Checks the configs a CreateTopics request gives a topic ([`change`] for
/// each; the storage tuning configs of `NOT_APPLIED` are accepted and not
/// applied). Anything else, as in Kafka, refuses the topic with
/// INVALID_CONFIG: a topic must not be created with a behaviour its
/// application asked for and does not get (e.g. compaction).
pub fn for_new_topic<'a>(
    configs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<NewTopicConfigs, Refusal> {
    let mut seen = std::collections::HashSet::new();
    let mut out = NewTopicConfigs::default();
    for (name, value) in configs {
        if !seen.insert(name) {
            return Err(duplicate(name));
        }
        let value = value.ok_or_else(|| null_value(name))?;
        match change(name, Some(value))? {
            Change::Accepted(accepted) => out.not_applied.push(accepted),
            c => out.changes.push(c),
        }
    }
    Ok(out)
}

/// Makes `changes` to topic `pulsar`: retention policies through the host's
/// topic policies, settings as its properties. With `replace` (the legacy
/// AlterConfigs), every config not named goes back to its default first.
/// Nothing is written under `validate_only`, nor when nothing changes.
pub async fn apply(
    ctx: &RequestContext<'_>,
    pulsar: &str,
    changes: Vec<Change>,
    replace: bool,
    validate_only: bool,
) -> Result<(), Refusal> {
    let host = ctx.host().ok_or((errors::KAFKA_STORAGE_ERROR, "no storage".to_owned()))?;
    let failed = |e: polyport_handler_api::HandlerError| (errors::from_handler(&e), e.message().to_owned());
    let current = host.topic_config(pulsar).await.map_err(failed)?;
    let mut policies = current.overrides;
    let mut settings: Vec<(String, Option<String>)> = Vec::new();
    if replace {
        for a in Alterable::ALL {
            a.set(&mut policies, UNSET);
        }
        settings.extend(Setting::ALL.into_iter().map(|s| (s.property(), None)));
    }
    for c in changes {
        match c {
            Change::Retention(a, value) => a.set(&mut policies, value),
            Change::Setting(s, value) => {
                settings.retain(|(k, _)| *k != s.property());
                settings.push((s.property(), value));
            }
            Change::Accepted(accepted) => {
                tracing::info!(topic = %pulsar, config = %accepted, "topic config accepted without effect")
            }
        }
    }
    if validate_only {
        return Ok(());
    }
    if policies != current.overrides {
        host.set_topic_policies(pulsar, policies).await.map_err(failed)?;
        let shown = |v: i64| if v == UNSET { "inherited".to_owned() } else { v.to_string() };
        tracing::info!(
            topic = %pulsar,
            retention_ms = %shown(policies.retention_ms),
            retention_bytes = %shown(policies.retention_bytes),
            "topic retention altered"
        );
    }
    if !settings.is_empty() {
        let now = host.update_topic_properties(pulsar, settings).await.map_err(failed)?;
        // Produce reads a topic's settings from the mapper's cache.
        ctx.shared.topics.forget(pulsar);
        let now = TopicSettings::from_properties(now.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        tracing::info!(topic = %pulsar, settings = ?now, "topic settings altered");
    }
    Ok(())
}

/// The settings topic `pulsar` has now (from the host; the broker's where
/// it has none or they cannot be read).
pub async fn settings(host: &polyport_handler_api::Host, pulsar: &str) -> TopicSettings {
    match host.topic_properties(pulsar).await {
        Ok(properties) => TopicSettings::from_properties(properties.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        Err(_) => TopicSettings::default(),
    }
}

/// Alters the configs of a topic resource: checks the resource type, then
/// computes the changes (`changes`, only for a topic) and [`apply`]s them.
pub async fn alter_topic(
    ctx: &RequestContext<'_>,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    replace: bool,
    changes: impl FnOnce() -> Result<Vec<Change>, Refusal>,
) -> Result<(), Refusal> {
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            // Pulsar has no cluster resource: a tenant admin of the default namespace stands for it.
            if !ctx.allowed(Operation::Admin, ctx.shared.topics.namespace()).await {
                return Err((errors::CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.".to_owned()));
            }
            return Err((errors::INVALID_REQUEST, "broker configs are read-only; set them in broker.conf".to_owned()));
        }
        other => {
            return Err((
                errors::INVALID_REQUEST,
                format!("resource type {other} is not supported: only topic (2) configs can be altered"),
            ))
        }
    }
    if ctx.topic_denied(Operation::Admin, name).await {
        return Err((errors::TOPIC_AUTHORIZATION_FAILED, crate::apis::not_authorized(name)));
    }
    let changes = changes()?;
    let pulsar = ctx.shared.topics.pulsar(name).map_err(|code| (code, format!("invalid topic name {name:?}")))?;
    apply(ctx, &pulsar, changes, replace, validate_only).await
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
    fn a_new_topic_gets_retention_settings_and_nothing_it_would_not_have() {
        let ok = for_new_topic([
            ("retention.ms", Some("60000")),
            ("cleanup.policy", Some("delete")),
            ("segment.bytes", Some("1048576")),
            ("max.message.bytes", Some("2048")),
            ("compression.type", Some("ZSTD")),
            ("min.insync.replicas", Some("1")),
            ("message.timestamp.type", Some("LogAppendTime")),
        ])
        .expect("accepted");
        assert_eq!(
            ok.changes,
            vec![
                Change::Retention(Alterable::RetentionMs, 60_000),
                Change::Setting(Setting::MaxMessageBytes, Some("2048".into())),
                Change::Setting(Setting::CompressionType, Some("zstd".into())),
                Change::Setting(Setting::TimestampType, Some("LogAppendTime".into())),
            ]
        );
        assert_eq!(ok.not_applied, ["cleanup.policy=delete", "segment.bytes=1048576", "min.insync.replicas=1"]);
        for (bad, code, says) in [
            (("cleanup.policy", Some("compact")), errors::INVALID_CONFIG, "never compacted"),
            (("max.message.bytes", Some("-5")), errors::INVALID_CONFIG, "max.message.bytes"),
            (("compression.type", Some("brotli")), errors::INVALID_CONFIG, "producer, uncompressed"),
            (("message.timestamp.type", Some("Now")), errors::INVALID_CONFIG, "CreateTime or LogAppendTime"),
            (("min.insync.replicas", Some("2")), errors::INVALID_CONFIG, "one replica"),
            (("retention.bytes", Some("lots")), errors::INVALID_CONFIG, "retention.bytes"),
            (
                ("no.such.config", Some("1")),
                errors::INVALID_CONFIG,
                "unknown or unsupported topic config no.such.config",
            ),
            (("retention.ms", None), errors::INVALID_REQUEST, "null value"),
        ] {
            let (c, message) = for_new_topic([bad]).expect_err(says);
            assert_eq!(c, code, "{message}");
            assert!(message.contains(says), "{message}");
        }
        let (c, _) = for_new_topic([("retention.ms", Some("1")), ("retention.ms", Some("2"))]).expect_err("twice");
        assert_eq!(c, errors::INVALID_REQUEST);
    }

    #[test]
    fn settings_round_trip_through_properties() {
        let properties = [
            ("kafka.max.message.bytes", "2048"),
            ("kafka.compression.type", "lz4"),
            ("kafka.message.timestamp.type", "LogAppendTime"),
            ("someone.else", "x"),
        ];
        let settings = TopicSettings::from_properties(properties);
        assert_eq!(
            settings,
            TopicSettings {
                max_message_bytes: Some(2048),
                log_append_time: Some(true),
                compression: Some(Codec::Lz4),
                transactional: false,
            }
        );
        for s in Setting::ALL {
            let stored = settings.get(s).expect("set");
            assert_eq!(s.parse(&stored), Ok(stored.clone()));
        }
        assert_eq!(TopicSettings::from_properties([]), TopicSettings::default());
        assert_eq!(change("compression.type", None), Ok(Change::Setting(Setting::CompressionType, None)));
        assert_eq!(change("retention.ms", None), Ok(Change::Retention(Alterable::RetentionMs, UNSET)));
    }
}
