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

/// One partition of a commit request (OffsetCommit, TxnOffsetCommit).
pub(super) struct Asked<'a> {
    pub index: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<&'a str>,
}

/// Each partition of a commit, per topic in request order: its index and
/// its entry's place in the entries to store, or its own error code.
pub(super) type Slots = Vec<Vec<(i32, Result<usize, i16>)>>;

/// Resolves a commit's topics (authorizing the group, then each topic with
/// `consume`) into the entries to store and each partition's slot.
pub(super) async fn entries<'a>(
    ctx: &RequestContext<'_>,
    group: &str,
    topics: impl Iterator<Item = (&'a str, Vec<Asked<'a>>)>,
) -> (Slots, Vec<CommitEntry>) {
    let now_ms =
        ctx.host().map_or(0, |h| h.now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64));
    let mapper = &ctx.shared.topics;
    let mut slots: Slots = Vec::new();
    let mut entries = Vec::new();
    let mut resolved_topics = HashMap::new();
    // A group the role may not use: every partition says so, no topic is asked about.
    let group_refused = !group.is_empty() && !ctx.allowed_group(group).await;
    for (name, partitions) in topics {
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
        for p in partitions {
            let slot = match (group.is_empty(), resolved.ledger(p.index), resolved.topic()) {
                (true, _, _) => Err(errors::INVALID_GROUP_ID),
                (false, Err(code), _) | (false, _, Err(code)) => Err(code),
                (false, Ok(ledger), Ok((pulsar, _))) => {
                    entries.push(CommitEntry {
                        key: (pulsar.to_owned(), p.index),
                        value: Committed {
                            offset: p.offset,
                            leader_epoch: p.leader_epoch,
                            metadata: p.metadata.unwrap_or("").to_owned(),
                            commit_ms: now_ms,
                            ledger,
                        },
                    });
                    Ok(entries.len() - 1)
                }
            };
            topic_slots.push((p.index, slot));
        }
        slots.push(topic_slots);
    }
    (slots, entries)
}

/// Each partition's code, per topic: its entry's from `codes`, or its own.
pub(super) fn answers(slots: Slots, codes: &[i16]) -> impl Iterator<Item = Vec<(i32, i16)>> + '_ {
    slots.into_iter().map(move |topic| {
        topic
            .into_iter()
            .map(|(index, slot)| match slot {
                Ok(i) => (index, codes.get(i).copied().unwrap_or(errors::UNKNOWN_SERVER_ERROR)),
                Err(code) => (index, code),
            })
            .collect()
    })
}

/// Stores every committed offset.
pub async fn handle(ctx: &RequestContext<'_>, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = request.group_id.0.to_string();
    let asked = request.topics.iter().map(|t| {
        let partitions = t
            .partitions
            .iter()
            .map(|p| Asked {
                index: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_deref(),
            })
            .collect();
        (t.name.as_str(), partitions)
    });
    let (slots, entries) = entries(ctx, &group, asked).await;
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
        .zip(answers(slots, &codes))
        .map(|(topic, codes)| {
            let partitions = codes
                .into_iter()
                .map(|(index, code)| {
                    OffsetCommitResponsePartition::default().with_partition_index(index).with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
