//! OffsetDelete (key 47).
//!
//! Version: 0. Deletes a group's committed offsets (and their cursors) for
//! partitions no live member subscribes to: GROUP_SUBSCRIBED_TO_TOPIC for the
//! others, as Kafka.
//! Authorization ([`crate::authz`]): the group needs `consume` on the
//! session's group namespace ([`crate::authz::group_namespace`]), else
//! GROUP_AUTHORIZATION_FAILED (30) for the request; each topic needs
//! `consume` (Kafka asks READ), else its partitions answer
//! TOPIC_AUTHORIZATION_FAILED (29).
//! Group ids are per namespace while authorization is on: the group is
//! the coordinator's `<group namespace>/<id>` ([`crate::authz`],
//! [`RequestContext::group_key`]). Groups created while authorization was
//! off keep unscoped ids and are not visible to scoped sessions.

use kafka_protocol::{
    messages::{
        offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic},
        OffsetDeleteRequest, OffsetDeleteResponse,
    },
    protocol::VersionRange,
};
use polyport_handler_api::storage::Operation;

use super::RequestContext;
use crate::errors;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

/// Deletes the offsets asked for.
pub async fn handle(ctx: &RequestContext<'_>, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group = request.group_id.0.to_string();
    if group.is_empty() {
        return OffsetDeleteResponse::default().with_error_code(errors::INVALID_GROUP_ID);
    }
    if !ctx.allowed_group(&group).await {
        return OffsetDeleteResponse::default().with_error_code(errors::GROUP_AUTHORIZATION_FAILED);
    }
    let mapper = &ctx.shared.topics;
    // (topic index, partition, key or the partition's error)
    let mut slots = Vec::new();
    let mut keys = Vec::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let pulsar = match mapper.pulsar(topic.name.as_str()) {
            Ok(p) if !ctx.allowed(Operation::Consume, &p).await => Err(errors::TOPIC_AUTHORIZATION_FAILED),
            other => other,
        };
        for p in &topic.partitions {
            match &pulsar {
                Ok(name) => {
                    slots.push((t, p.partition_index, Ok(keys.len())));
                    keys.push((name.clone(), p.partition_index));
                }
                Err(code) => slots.push((t, p.partition_index, Err(*code))),
            }
        }
    }
    let codes = match ctx.shared.coordinator.offset_delete(&ctx.group_key(&group), keys).await {
        Ok(codes) => codes,
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code),
    };
    let mut topics: Vec<OffsetDeleteResponseTopic> =
        request.topics.iter().map(|t| OffsetDeleteResponseTopic::default().with_name(t.name.clone())).collect();
    for (t, partition, slot) in slots {
        let code = match slot {
            Ok(i) => codes.get(i).copied().unwrap_or(errors::UNKNOWN_SERVER_ERROR),
            Err(code) => code,
        };
        topics[t]
            .partitions
            .push(OffsetDeleteResponsePartition::default().with_partition_index(partition).with_error_code(code));
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
