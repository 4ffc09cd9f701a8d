//! OffsetCommit (key 8).
//!
//! Versions: 2-8. Group members commit with their generation and member id
//! (checked: ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
//! REBALANCE_IN_PROGRESS); standalone consumers commit with generation -1 to
//! a group without members. Offsets, leader epochs and metadata strings are
//! stored in the coordinator's system topic and answered once durable; each
//! is mirrored to the group's durable cursor on the partition
//! ([`crate::coordinator::mirror`]).
//! Authorization ([`crate::authz`]): the group needs `consume` on the
//! session's group namespace ([`crate::authz::group_namespace`]), else
//! every partition answers GROUP_AUTHORIZATION_FAILED (30); each topic
//! needs `consume`, else its partitions answer TOPIC_AUTHORIZATION_FAILED
//! (29) and the others are committed.
//! Group ids are per namespace while authorization is on: the group is
//! the coordinator's `<group namespace>/<id>` ([`crate::authz`],
//! [`RequestContext::group_key`]). Groups created while authorization was
//! off keep unscoped ids and are not visible to scoped sessions.
//! Gaps: the retention time of v2-4 is ignored (`offsetsRetentionMinutes`
//! applies, as in Kafka 2.1+).

use std::collections::HashMap;

use kafka_protocol::{
    messages::{
        offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic},
        OffsetCommitRequest, OffsetCommitResponse,
    },
    protocol::VersionRange,
};
use polyport_handler_api::storage::Operation;

use super::RequestContext;
use crate::{
    coordinator::{CommitEntry, Committed, Committer},
    errors,
    topics::Resolved,
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 2, max: 8 };

/// Stores every committed offset.
pub async fn handle(ctx: &RequestContext<'_>, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = request.group_id.0.to_string();
    let now_ms =
        ctx.host().map_or(0, |h| h.now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64));
    let mapper = &ctx.shared.topics;
    // Per partition: its entry index in the commit, or its own error.
    let mut slots: Vec<Vec<(i32, Result<usize, i16>)>> = Vec::new();
    let mut entries = Vec::new();
    let mut resolved_topics = HashMap::new();
    // A group the role may not use: every partition says so, no topic is asked about.
    let group_refused = !group.is_empty() && !ctx.allowed_group(&group).await;
    for topic in &request.topics {
        let name = topic.name.as_str();
        if !resolved_topics.contains_key(name) {
            let resolved = if group_refused {
                Resolved::error(errors::GROUP_AUTHORIZATION_FAILED)
            } else if ctx.topic_denied(Operation::Consume, name).await {
                Resolved::error(errors::TOPIC_AUTHORIZATION_FAILED)
            } else {
                mapper.resolve(ctx.host(), name, false).await
            };
            resolved_topics.insert(name.to_owned(), resolved);
        }
        let resolved = &resolved_topics[name];
        let mut topic_slots = Vec::new();
        for p in &topic.partitions {
            let slot = match (group.is_empty(), resolved.ledger(p.partition_index), resolved.topic()) {
                (true, _, _) => Err(errors::INVALID_GROUP_ID),
                (false, Err(code), _) | (false, _, Err(code)) => Err(code),
                (false, Ok(ledger), Ok((pulsar, _))) => {
                    entries.push(CommitEntry {
                        key: (pulsar.to_owned(), p.partition_index),
                        value: Committed {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p.committed_metadata.as_deref().unwrap_or("").to_owned(),
                            commit_ms: now_ms,
                            ledger,
                        },
                    });
                    Ok(entries.len() - 1)
                }
            };
            topic_slots.push((p.partition_index, slot));
        }
        slots.push(topic_slots);
    }
    let codes = if entries.is_empty() {
        Vec::new()
    } else {
        let who = Committer {
            member_id: request.member_id.to_string(),
            instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            generation: request.generation_id_or_member_epoch,
        };
        ctx.shared.coordinator.commit(&ctx.group_key(&group), who, entries).await
    };
    let topics = request
        .topics
        .into_iter()
        .zip(slots)
        .map(|(topic, topic_slots)| {
            let partitions = topic_slots
                .into_iter()
                .map(|(index, slot)| {
                    let code = match slot {
                        Ok(i) => codes.get(i).copied().unwrap_or(errors::UNKNOWN_SERVER_ERROR),
                        Err(code) => code,
                    };
                    OffsetCommitResponsePartition::default().with_partition_index(index).with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
