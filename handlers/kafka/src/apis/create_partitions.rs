//! CreatePartitions (key 37).
//!
//! Versions: 0-3. Raises a topic's partition count to `count` (the new
//! total): the Pulsar partitioned topic gets partitions `count`-1 … and the
//! existing ones keep their data. The topic must exist and be partitioned (a
//! non-partitioned Pulsar topic is one Kafka partition whose count cannot
//! change: INVALID_PARTITIONS), and the count can only grow
//! (INVALID_PARTITIONS). `validate_only` checks without changing anything. A
//! topic named twice answers INVALID_REQUEST.
//! A replica assignment is served when it places every new partition on
//! this broker alone, on a standalone broker; in a cluster never
//! (INVALID_REPLICA_ASSIGNMENT otherwise).
//! Authorization ([`crate::authz`]): `admin` on the topic (a tenant
//! admin's right), checked after the duplicate names and before anything
//! else; refused, TOPIC_AUTHORIZATION_FAILED (29).
//! Gaps: `timeout_ms` is ignored (the partitions exist when the response is
//! sent).

use std::collections::HashMap;

use kafka_protocol::{
    messages::{
        create_partitions_response::CreatePartitionsTopicResult, CreatePartitionsRequest, CreatePartitionsResponse,
    },
    protocol::{StrBytes, VersionRange},
};
use polyport_handler_api::{storage::Operation, ErrorKind};

use super::RequestContext;
use crate::{configs::Refusal, errors};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

/// The host's errors, with INVALID_PARTITIONS for a refused count.
fn refusal(e: &polyport_handler_api::HandlerError) -> Refusal {
    let code =
        if e.kind() == ErrorKind::INVALID_ARGUMENT { errors::INVALID_PARTITIONS } else { errors::from_handler(e) };
    (code, e.message().to_owned())
}

async fn create(ctx: &RequestContext<'_>, name: &str, count: i32, validate_only: bool) -> Result<(), Refusal> {
    let mapper = &ctx.shared.topics;
    let pulsar = mapper.pulsar(name).map_err(|code| (code, format!("invalid topic name {name:?}")))?;
    let host = ctx.host().ok_or((errors::KAFKA_STORAGE_ERROR, "no storage".to_owned()))?;
    // Asked of the host, not the cache: the count is about to be compared.
    let current = host.partitioned_metadata(&pulsar, false).await.map_err(|e| {
        mapper.forget_if_missing(&pulsar, e.kind());
        refusal(&e)
    })?;
    if current == 0 {
        return Err((
            errors::INVALID_PARTITIONS,
            format!("topic {name} is a non-partitioned Pulsar topic: its single partition cannot be added to"),
        ));
    }
    let wanted = u32::try_from(count).ok().filter(|c| *c > current).ok_or_else(|| {
        let message = if i64::from(count) == i64::from(current) {
            format!("topic {name} already has {current} partitions")
        } else {
            format!("topic {name} has {current} partitions, more than the {count} asked for; the count can only grow")
        };
        (errors::INVALID_PARTITIONS, message)
    })?;
    if validate_only {
        return Ok(());
    }
    let done = host.create_partitions(&pulsar, wanted).await;
    mapper.forget(&pulsar);
    done.map_err(|e| refusal(&e))
}

/// Adds partitions to every topic named.
pub async fn handle(ctx: &RequestContext<'_>, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut named: HashMap<&str, usize> = HashMap::new();
    for topic in &request.topics {
        *named.entry(topic.name.as_str()).or_default() += 1;
    }
    let mut results = Vec::new();
    for topic in &request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let outcome = if named.get(topic.name.as_str()).is_some_and(|n| *n > 1) {
            Err((errors::INVALID_REQUEST, format!("topic {} is named more than once", topic.name.as_str())))
        } else if ctx.topic_denied(Operation::Admin, topic.name.as_str()).await {
            Err((errors::TOPIC_AUTHORIZATION_FAILED, super::not_authorized(topic.name.as_str())))
        } else if ctx.shared.node_id() != 0 && topic.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                "replica assignments are not served in a cluster: each new partition is served by the broker \
                 that owns it"
                    .to_owned(),
            ))
        } else if let Some(elsewhere) =
            topic.assignments.iter().flatten().find(|a| a.broker_ids.iter().map(|b| b.0).ne([ctx.shared.node_id()]))
        {
            let ids: Vec<i32> = elsewhere.broker_ids.iter().map(|b| b.0).collect();
            Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                format!("a new partition on brokers {ids:?}: this cluster is broker {} alone", ctx.shared.node_id()),
            ))
        } else {
            create(ctx, topic.name.as_str(), topic.count, request.validate_only).await
        };
        results.push(match outcome {
            Ok(()) => result,
            Err((code, message)) => {
                result.with_error_code(code).with_error_message(Some(StrBytes::from_string(message)))
            }
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
