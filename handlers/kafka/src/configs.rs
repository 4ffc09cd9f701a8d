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
}
