//! CreateTopics (key 19).
//!
//! Versions: 2-7. A Kafka topic with N partitions is a Pulsar partitioned
//! topic with N partitions (`t-partition-0` …). `num_partitions` -1 means
//! the broker's `defaultNumPartitions` (what DescribeConfigs shows as
//! `num.partitions`); the replication factor must be -1 or 1 (one broker).
//! `validate_only` checks everything without creating. Configs (`configs::for_new_topic`): `retention.ms` and
//! `retention.bytes` are set on the new topic; the read-only ones this
//! broker describes (`cleanup.policy`, `compression.type`,
//! `max.message.bytes`, `message.timestamp.type`, `min.insync.replicas`)
//! are accepted with the value it has anyway; Kafka's storage tuning
//! configs (`segment.bytes`, `flush.ms`, ...) are accepted and not applied
//! (logged); anything else refuses the topic with INVALID_CONFIG and
//! nothing is created. v5+ answers with the new topic's configs.
//! Gaps: manual replica assignments are refused with INVALID_REQUEST; a
//! validate-only answer carries no configs.

use kafka_protocol::{
    messages::{
        create_topics_response::{CreatableTopicConfigs, CreatableTopicResult},
        CreateTopicsRequest, CreateTopicsResponse,
    },
    protocol::{StrBytes, VersionRange},
};
use polyport_handler_api::Host;

use super::{describe_configs::topic_config_values, RequestContext};
use crate::{
    configs::{self, NewTopicConfigs},
    errors,
    topics::topic_id,
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 2, max: 7 };

/// Sets the configs a new topic was created with; if that fails, the topic
/// is deleted again, so that a creation is all or nothing.
async fn apply(host: &Host, pulsar: &str, configs: &NewTopicConfigs) -> Result<(), configs::Refusal> {
    if !configs.not_applied.is_empty() {
        tracing::info!(topic = %pulsar, configs = ?configs.not_applied, "topic configs accepted and not applied");
    }
    if configs.set.is_empty() {
        return Ok(());
    }
    let set = async {
        let mut policies = host.topic_config(pulsar).await?.overrides;
        for (a, value) in &configs.set {
            a.set(&mut policies, *value);
        }
        host.set_topic_policies(pulsar, policies).await
    };
    match set.await {
        Ok(()) => Ok(()),
        Err(e) => {
            if let Err(undo) = host.delete_topic(pulsar).await {
                tracing::warn!(topic = %pulsar, error = %undo, "topic created without its configs and not deleted");
            }
            Err((errors::from_handler(&e), format!("topic configs not set: {}", e.message())))
        }
    }
}

/// Creates (or validates) every topic.
pub async fn handle(ctx: &RequestContext<'_>, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mapper = &ctx.shared.topics;
    let max_message_bytes = i64::try_from(ctx.shared.max_message_bytes).unwrap_or(i64::MAX);
    let mut results = Vec::new();
    for topic in request.topics {
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        let partitions =
            if topic.num_partitions == -1 { ctx.shared.broker.default_partitions } else { topic.num_partitions };
        let fail = |code: i16, message: String| {
            result.clone().with_error_code(code).with_error_message(Some(StrBytes::from_string(message)))
        };
        let outcome = if partitions < 1 {
            Err((errors::INVALID_PARTITIONS, format!("{partitions} partitions: at least 1 is needed")))
        } else if !matches!(topic.replication_factor, -1 | 1) {
            Err((
                errors::INVALID_REPLICATION_FACTOR,
                format!("replication factor {} on a single broker", topic.replication_factor),
            ))
        } else if !topic.assignments.is_empty() {
            Err((errors::INVALID_REQUEST, "manual replica assignments are not supported".to_owned()))
        } else {
            let asked = topic.configs.iter().map(|c| (c.name.as_str(), c.value.as_ref().map(|v| v.as_str())));
            match (
                mapper.pulsar(topic.name.as_str()),
                ctx.host(),
                configs::for_new_topic(max_message_bytes, ctx.shared.timestamp_type(), asked),
            ) {
                (_, _, Err(refusal)) => Err(refusal),
                (Err(code), _, _) => Err((code, format!("invalid topic name {:?}", topic.name.as_str()))),
                (Ok(_), None, _) => Err((errors::KAFKA_STORAGE_ERROR, "no storage".to_owned())),
                (Ok(pulsar), Some(host), Ok(new_configs)) => {
                    let done = if request.validate_only {
                        match host.partitioned_metadata(&pulsar, false).await {
                            Ok(_) => Err(errors::TOPIC_ALREADY_EXISTS),
                            Err(e) if e.kind() == polyport_handler_api::ErrorKind::NOT_FOUND => Ok(()),
                            Err(e) => Err(errors::from_handler(&e)),
                        }
                        .map_err(|code| (code, format!("topic {pulsar} cannot be created")))
                    } else {
                        match host.create_topic(&pulsar, partitions as u32).await {
                            Ok(()) => apply(host, &pulsar, &new_configs).await,
                            Err(e) => Err((errors::from_handler(&e), e.message().to_owned())),
                        }
                    };
                    mapper.forget(&pulsar);
                    done.map(|()| (pulsar, host))
                }
            }
        };
        results.push(match outcome {
            Ok((pulsar, host)) => {
                let mut result =
                    result.with_topic_id(topic_id(&pulsar)).with_num_partitions(partitions).with_replication_factor(1);
                if ctx.version >= 5 && !request.validate_only {
                    if let Ok(config) = host.topic_config(&pulsar).await {
                        let described =
                            topic_config_values(ctx, &config).into_iter().map(|(name, value, ro, source)| {
                                CreatableTopicConfigs::default()
                                    .with_name(StrBytes::from_static_str(name))
                                    .with_value(value.map(StrBytes::from_string))
                                    .with_read_only(ro)
                                    .with_config_source(source)
                            });
                        result = result.with_configs(Some(described.collect()));
                    }
                }
                result
            }
            Err((code, message)) => fail(code, message),
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}
