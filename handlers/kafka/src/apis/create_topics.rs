//! CreateTopics (key 19).
//!
//! Versions: 2-7. A Kafka topic with N partitions is a Pulsar partitioned
//! topic with N partitions (`t-partition-0` …). `num_partitions` -1 means 1;
//! the replication factor must be -1 or 1 (one broker). `validate_only` checks
//! without creating.
//! Gaps: topic configs are accepted and not applied yet; manual replica
//! assignments are refused with INVALID_REQUEST.

use kafka_protocol::{
    messages::{create_topics_response::CreatableTopicResult, CreateTopicsRequest, CreateTopicsResponse},
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;
use crate::{errors, topics::topic_id};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 2, max: 7 };

/// Creates (or validates) every topic.
pub async fn handle(ctx: &RequestContext<'_>, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mapper = &ctx.shared.topics;
    let mut results = Vec::new();
    for topic in request.topics {
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        let partitions = if topic.num_partitions == -1 { 1 } else { topic.num_partitions };
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
            match (mapper.pulsar(topic.name.as_str()), ctx.host()) {
                (Err(code), _) => Err((code, format!("invalid topic name {:?}", topic.name.as_str()))),
                (Ok(_), None) => Err((errors::KAFKA_STORAGE_ERROR, "no storage".to_owned())),
                (Ok(pulsar), Some(host)) => {
                    let done = if request.validate_only {
                        match host.partitioned_metadata(&pulsar, false).await {
                            Ok(_) => Err(errors::TOPIC_ALREADY_EXISTS),
                            Err(e) if e.kind() == polyport_handler_api::ErrorKind::NOT_FOUND => Ok(()),
                            Err(e) => Err(errors::from_handler(&e)),
                        }
                        .map_err(|code| (code, format!("topic {pulsar} cannot be created")))
                    } else {
                        host.create_topic(&pulsar, partitions as u32)
                            .await
                            .map_err(|e| (errors::from_handler(&e), e.message().to_owned()))
                    };
                    mapper.forget(&pulsar);
                    done.map(|()| pulsar)
                }
            }
        };
        results.push(match outcome {
            Ok(pulsar) => {
                result.with_topic_id(topic_id(&pulsar)).with_num_partitions(partitions).with_replication_factor(1)
            }
            Err((code, message)) => fail(code, message),
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}
