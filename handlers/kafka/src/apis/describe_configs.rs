//! DescribeConfigs (key 32).
//!
//! Versions: 1-4. Topic resources list `retention.ms` and `retention.bytes`
//! (the values in force; source DYNAMIC_TOPIC_CONFIG when the topic sets its
//! own, else DEFAULT_CONFIG), `cleanup.policy` (delete), and, read-only,
//! `max.message.bytes` (the broker's `maxMessageSize`),
//! `message.timestamp.type` (the broker's `kafkaMessageTimestampType`) and
//! `min.insync.replicas` (1). The broker resource (named after the node id,
//! "0", or "") lists read-only `message.max.bytes`, `num.partitions`,
//! `default.replication.factor`, `log.message.timestamp.type` and
//! `auto.create.topics.enable`. `configuration_keys` null or empty lists every
//! config; otherwise only those named (unknown names are left out). Config
//! types and documentation are sent from v3, documentation only when asked.
//! Authorization ([`crate::authz`]): a topic's configs need `lookup`
//! (`produce` or `consume`), else TOPIC_AUTHORIZATION_FAILED (29); the
//! broker's need no grant.
//! Gaps: a synonym list holds the config itself only (the namespace and
//! broker values a topic override hides are not listed); other resource
//! types (groups, broker loggers, client metrics) answer INVALID_REQUEST.

use kafka_protocol::{
    messages::{
        describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym},
        DescribeConfigsRequest, DescribeConfigsResponse,
    },
    protocol::{StrBytes, VersionRange},
};
use polyport_handler_api::storage::{Operation, TopicConfig, UNSET};

use super::RequestContext;
use crate::{
    configs::{
        Alterable, Refusal, Setting, TopicSettings, RESOURCE_BROKER, RESOURCE_TOPIC, SOURCE_DEFAULT,
        SOURCE_DYNAMIC_TOPIC, SOURCE_STATIC_BROKER, TYPE_BOOLEAN, TYPE_INT, TYPE_LIST, TYPE_LONG, TYPE_STRING,
    },
    errors,
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };

/// One config as described.
struct Described {
    name: &'static str,
    value: Option<String>,
    read_only: bool,
    source: i8,
    config_type: i8,
    documentation: &'static str,
}

fn fixed(
    name: &'static str,
    value: impl ToString,
    source: i8,
    config_type: i8,
    documentation: &'static str,
) -> Described {
    Described { name, value: Some(value.to_string()), read_only: true, source, config_type, documentation }
}

/// A topic's configs as (name, value, read-only, source): what CreateTopics
/// v5+ returns for a topic it created.
pub fn topic_config_values(
    ctx: &RequestContext<'_>,
    config: &TopicConfig,
    settings: &TopicSettings,
) -> Vec<(&'static str, Option<String>, bool, i8)> {
    topic_configs(ctx, config, settings).into_iter().map(|d| (d.name, d.value, d.read_only, d.source)).collect()
}

fn topic_configs(ctx: &RequestContext<'_>, config: &TopicConfig, settings: &TopicSettings) -> Vec<Described> {
    // A setting of the topic's own, else the broker's value.
    let setting = |s: Setting, broker: String, config_type, documentation| {
        let (value, source) = match settings.get(s) {
            Some(own) => (own, SOURCE_DYNAMIC_TOPIC),
            None => (broker, SOURCE_STATIC_BROKER),
        };
        Described { name: s.name(), value: Some(value), read_only: false, source, config_type, documentation }
    };
    let alterable = |a: Alterable, documentation| {
        let value = a.get(&config.effective);
        let source = if a.get(&config.overrides) == UNSET { SOURCE_DEFAULT } else { SOURCE_DYNAMIC_TOPIC };
        Described {
            name: a.name(),
            value: (value != UNSET).then(|| value.to_string()),
            read_only: false,
            source,
            config_type: TYPE_LONG,
            documentation,
        }
    };
    vec![
        alterable(
            Alterable::RetentionMs,
            "How long the topic's data is kept, in ms (-1: forever). Unset, the namespace's or the broker's \
             retention applies.",
        ),
        alterable(
            Alterable::RetentionBytes,
            "How many bytes of data each partition keeps (-1: no limit). Unset, the namespace's or the broker's \
             retention applies.",
        ),
        Described {
            read_only: false,
            ..fixed(
                "cleanup.policy",
                "delete",
                SOURCE_DEFAULT,
                TYPE_LIST,
                "Old data is deleted per the retention settings; compaction is not supported.",
            )
        },
        setting(
            Setting::MaxMessageBytes,
            ctx.shared.max_message_bytes.to_string(),
            TYPE_INT,
            "The largest record batch the topic accepts (unset: the broker's maxMessageSize).",
        ),
        setting(
            Setting::TimestampType,
            ctx.shared.timestamp_type().to_owned(),
            TYPE_STRING,
            "CreateTime: records keep the timestamp their producer gave them; LogAppendTime: the broker's time \
             when it stored them (unset: kafkaMessageTimestampType).",
        ),
        setting(
            Setting::CompressionType,
            "producer".to_owned(),
            TYPE_STRING,
            "producer: batches are stored as their producer compressed them; a codec (uncompressed, gzip, \
             snappy, lz4, zstd): batches that arrive otherwise are recompressed with it.",
        ),
        fixed("min.insync.replicas", 1, SOURCE_DEFAULT, TYPE_INT, "A single broker: one replica."),
    ]
}

fn broker_configs(ctx: &RequestContext<'_>) -> Vec<Described> {
    vec![
        fixed(
            "message.max.bytes",
            ctx.shared.max_message_bytes,
            SOURCE_STATIC_BROKER,
            TYPE_INT,
            "The largest record batch accepted (maxMessageSize in broker.conf).",
        ),
        fixed(
            "num.partitions",
            ctx.shared.broker.default_partitions,
            SOURCE_STATIC_BROKER,
            TYPE_INT,
            "Partitions of a topic created without a count (defaultNumPartitions).",
        ),
        fixed("default.replication.factor", 1, SOURCE_DEFAULT, TYPE_INT, "A single broker: one replica."),
        fixed(
            "log.message.timestamp.type",
            ctx.shared.timestamp_type(),
            SOURCE_STATIC_BROKER,
            TYPE_STRING,
            "The timestamp type of every topic (kafkaMessageTimestampType).",
        ),
        fixed(
            "auto.create.topics.enable",
            ctx.shared.broker.auto_create_topics,
            SOURCE_STATIC_BROKER,
            TYPE_BOOLEAN,
            "Whether topics are created on first use (allowAutoTopicCreation in broker.conf).",
        ),
    ]
}

async fn describe(ctx: &RequestContext<'_>, resource_type: i8, name: &str) -> Result<Vec<Described>, Refusal> {
    match resource_type {
        RESOURCE_TOPIC => {
            let pulsar =
                ctx.shared.topics.pulsar(name).map_err(|code| (code, format!("invalid topic name {name:?}")))?;
            if !ctx.allowed(Operation::Lookup, &pulsar).await {
                return Err((errors::TOPIC_AUTHORIZATION_FAILED, super::not_authorized(name)));
            }
            let host = ctx.host().ok_or((errors::KAFKA_STORAGE_ERROR, "no storage".to_owned()))?;
            let config =
                host.topic_config(&pulsar).await.map_err(|e| (errors::from_handler(&e), e.message().to_owned()))?;
            let settings = crate::configs::settings(host, &pulsar).await;
            Ok(topic_configs(ctx, &config, &settings))
        }
        RESOURCE_BROKER if name.is_empty() || name == ctx.shared.node_id().to_string() => Ok(broker_configs(ctx)),
        RESOURCE_BROKER => {
            Err((errors::INVALID_REQUEST, format!("no broker {name:?}: this broker is node {}", ctx.shared.node_id())))
        }
        other => Err((
            errors::INVALID_REQUEST,
            format!("resource type {other} is not supported: only topic (2) and broker (4) configs are described"),
        )),
    }
}

/// Describes every resource.
pub async fn handle(ctx: &RequestContext<'_>, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let documented = ctx.version >= 3 && request.include_documentation;
    let mut results = Vec::new();
    for resource in request.resources {
        let result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let wanted = |name: &str| match &resource.configuration_keys {
            Some(keys) if !keys.is_empty() => keys.iter().any(|k| k.as_str() == name),
            _ => true,
        };
        results.push(match describe(ctx, resource.resource_type, resource.resource_name.as_str()).await {
            Ok(configs) => result.with_configs(
                configs
                    .into_iter()
                    .filter(|c| wanted(c.name))
                    .map(|c| {
                        let name = StrBytes::from_static_str(c.name);
                        let value = c.value.map(StrBytes::from_string);
                        let mut out = DescribeConfigsResourceResult::default()
                            .with_name(name.clone())
                            .with_value(value.clone())
                            .with_read_only(c.read_only)
                            .with_config_source(c.source)
                            .with_is_sensitive(false);
                        if request.include_synonyms {
                            out = out.with_synonyms(vec![DescribeConfigsSynonym::default()
                                .with_name(name)
                                .with_value(value)
                                .with_source(c.source)]);
                        }
                        if ctx.version >= 3 {
                            out = out
                                .with_config_type(c.config_type)
                                .with_documentation(documented.then(|| StrBytes::from_static_str(c.documentation)));
                        }
                        out
                    })
                    .collect(),
            ),
            Err((code, message)) => {
                result.with_error_code(code).with_error_message(Some(StrBytes::from_string(message)))
            }
        });
    }
    DescribeConfigsResponse::default().with_results(results)
}
