//! CreateTopics (key 19).
//!
//! Versions: 2-7. A Kafka topic with N partitions is a Pulsar partitioned
//! topic with N partitions (`t-partition-0` …). `num_partitions` -1 means
//! the broker's `defaultNumPartitions` (what DescribeConfigs shows as
//! `num.partitions`); the replication factor must be -1 or 1 (one copy of
//! each partition, as one Kafka broker holds), or anything with
//! `kafkaAcceptAnyReplicationFactor=true` (KoP's behaviour: the ledger's
//! own durability applies whatever the factor).
//! `validate_only` checks everything without creating. A manual replica
//! assignment is served when it places partitions 0 to n-1 on this broker
//! alone, on a standalone broker; in a cluster, where partitions go to
//! their owners, never (INVALID_REPLICA_ASSIGNMENT otherwise). Configs
//! (`configs::for_new_topic`): `retention.ms`, `retention.bytes`,
//! `max.message.bytes`, `message.timestamp.type` and `compression.type` are
//! set on the new topic; `cleanup.policy=delete`, `min.insync.replicas=1`
//! and Kafka's storage tuning configs (`segment.bytes`, `flush.ms`, ...)
//! are accepted and not applied (logged); anything else refuses the topic
//! with INVALID_CONFIG and nothing is created. v5+ answers with the new
//! topic's configs.
//! Authorization ([`crate::authz`]): `admin` on the topic (a tenant
//! admin's right), checked first; refused, TOPIC_AUTHORIZATION_FAILED (29).
//! Gaps: a validate-only answer carries no configs.

use kafka_protocol::{
    messages::{
        create_topics_response::{CreatableTopicConfigs, CreatableTopicResult},
        CreateTopicsRequest, CreateTopicsResponse,
    },
    protocol::{StrBytes, VersionRange},
};
use polyport_handler_api::{storage::Operation, Host};

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
async fn apply(
    ctx: &RequestContext<'_>,
    host: &Host,
    pulsar: &str,
    configs: NewTopicConfigs,
) -> Result<(), configs::Refusal> {
    if !configs.not_applied.is_empty() {
        tracing::info!(topic = %pulsar, configs = ?configs.not_applied, "topic configs accepted and not applied");
    }
    if configs.changes.is_empty() {
        return Ok(());
    }
    match configs::apply(ctx, pulsar, configs.changes, false, false).await {
        Ok(()) => Ok(()),
        Err((code, message)) => {
            if let Err(undo) = host.delete_topic(pulsar).await {
                tracing::warn!(topic = %pulsar, error = %undo, "topic created without its configs and not deleted");
            }
            Err((code, format!("topic configs not set: {message}")))
        }
    }
}

/// The partition count a manual replica assignment gives, if it can be
/// served: partitions 0 to n-1, each placed on this broker alone (what
/// applications that name their replicas on a one-broker cluster send).
/// In a cluster (`node_id` not 0) no assignment is served.
fn assigned_partitions(
    assignments: &[kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment],
    node_id: i32,
) -> Result<i32, configs::Refusal> {
    let mut seen = vec![false; assignments.len()];
    for a in assignments {
        let index = usize::try_from(a.partition_index).ok().filter(|i| *i < seen.len());
        let Some(index) = index.filter(|i| !seen[*i]) else {
            return Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "partition {} of {} assigned: partitions 0 to {} each once",
                    a.partition_index,
                    assignments.len(),
                    assignments.len() - 1
                ),
            ));
        };
        seen[index] = true;
        if node_id != 0 {
            // A cluster places partitions by ownership (docs/cluster.md):
            // an assignment would be silently not honoured.
            return Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                "replica assignments are not served in a cluster: each partition is served by the broker that \
                 owns it (placed evenly over the live brokers); create the topic with a partition count"
                    .to_owned(),
            ));
        }
        if a.broker_ids.iter().map(|b| b.0).ne([node_id]) {
            let ids: Vec<i32> = a.broker_ids.iter().map(|b| b.0).collect();
            return Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                format!("partition {} on brokers {ids:?}: this cluster is broker {node_id} alone", a.partition_index),
            ));
        }
    }
    i32::try_from(assignments.len()).map_err(|_| (errors::INVALID_REPLICA_ASSIGNMENT, "too many partitions".to_owned()))
}

/// Creates (or validates) every topic.
pub async fn handle(ctx: &RequestContext<'_>, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mapper = &ctx.shared.topics;
    let mut results = Vec::new();
    for topic in request.topics {
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        let fail = |code: i16, message: String| {
            result.clone().with_error_code(code).with_error_message(Some(StrBytes::from_string(message)))
        };
        if ctx.topic_denied(Operation::Admin, topic.name.as_str()).await {
            results.push(fail(errors::TOPIC_AUTHORIZATION_FAILED, super::not_authorized(topic.name.as_str())));
            continue;
        }
        let assigned = (!topic.assignments.is_empty())
            .then(|| {
                if topic.num_partitions != -1 || topic.replication_factor != -1 {
                    return Err((
                        errors::INVALID_REQUEST,
                        "with a replica assignment, num_partitions and replication_factor must be -1".to_owned(),
                    ));
                }
                assigned_partitions(&topic.assignments, ctx.shared.node_id())
            })
            .transpose();
        let partitions = match assigned {
            Ok(Some(n)) => Ok(n),
            Ok(None) if topic.num_partitions == -1 => Ok(ctx.shared.broker.default_partitions),
            Ok(None) => Ok(topic.num_partitions),
            Err(refusal) => Err(refusal),
        };
        let outcome = match partitions {
            Err(refusal) => Err(refusal),
            Ok(partitions) if partitions < 1 => {
                Err((errors::INVALID_PARTITIONS, format!("{partitions} partitions: at least 1 is needed")))
            }
            Ok(_) if !ctx.shared.broker.any_replication_factor && !matches!(topic.replication_factor, -1 | 1) => Err((
                errors::INVALID_REPLICATION_FACTOR,
                format!("replication factor {} on a single broker", topic.replication_factor),
            )),
            Ok(partitions) => {
                let asked = topic.configs.iter().map(|c| (c.name.as_str(), c.value.as_ref().map(|v| v.as_str())));
                match (mapper.pulsar(topic.name.as_str()), ctx.host(), configs::for_new_topic(asked)) {
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
                                Ok(()) => apply(ctx, host, &pulsar, new_configs).await,
                                Err(e) => Err((errors::from_handler(&e), e.message().to_owned())),
                            }
                        };
                        mapper.forget(&pulsar);
                        done.map(|()| (pulsar, host, partitions))
                    }
                }
            }
        };
        results.push(match outcome {
            Ok((pulsar, host, partitions)) => {
                let mut result =
                    result.with_topic_id(topic_id(&pulsar)).with_num_partitions(partitions).with_replication_factor(1);
                if ctx.version >= 5 && !request.validate_only {
                    if let Ok(config) = host.topic_config(&pulsar).await {
                        let settings = configs::settings(host, &pulsar).await;
                        let described = topic_config_values(ctx, &config, &settings).into_iter().map(
                            |(name, value, ro, source)| {
                                CreatableTopicConfigs::default()
                                    .with_name(StrBytes::from_static_str(name))
                                    .with_value(value.map(StrBytes::from_string))
                                    .with_read_only(ro)
                                    .with_config_source(source)
                            },
                        );
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
