//! OffsetFetch (key 9).
//!
//! Versions: 1-8. Committed offsets with their leader epoch and metadata
//! string, from the coordinator; -1 where the group has committed nothing.
//! With no topic list (v2+), every partition the group committed is listed.
//! v8 asks for several groups at once.
//! Authorization ([`crate::authz`]): each group needs `consume` on the
//! session's group namespace ([`crate::authz::group_namespace`]), else
//! GROUP_AUTHORIZATION_FAILED (30) for the group (v1, which has no such
//! field: on each partition asked for). A topic asked for by name needs
//! `consume`, else its partitions answer TOPIC_AUTHORIZATION_FAILED (29);
//! with no topic list, only the topics the role may consume are listed.
//! Group ids are per namespace while authorization is on: each group is
//! the coordinator's `<group namespace>/<id>` ([`crate::authz`],
//! [`RequestContext::group_key`]); v8's `groups[].group_id` echoes the
//! client's id. Groups created while authorization was off keep unscoped
//! ids and are not visible to scoped sessions (their committed offsets are
//! not migrated).
//! `require_stable` (v7+): a partition with a transactional commit pending
//! (TxnOffsetCommit in a transaction not ended yet) answers
//! UNSTABLE_OFFSET_COMMIT, which the client retries until the transaction
//! ends; without it, the last committed offset is answered.
//! Gaps: v9 (KIP-848 member epochs) is not served.

use std::collections::BTreeMap;

use kafka_protocol::{
    messages::{
        offset_fetch_response::{
            OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
            OffsetFetchResponseTopic, OffsetFetchResponseTopics,
        },
        OffsetFetchRequest, OffsetFetchResponse, TopicName,
    },
    protocol::{StrBytes, VersionRange},
};
use polyport_handler_api::storage::Operation;

use super::RequestContext;
use crate::{coordinator::Committed, errors};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 8 };

/// One partition's answer: offset, leader epoch, metadata, error.
type Answer = (i32, Option<Committed>, i16);

/// Answers the group's committed offsets.
pub async fn handle(ctx: &RequestContext<'_>, request: OffsetFetchRequest) -> OffsetFetchResponse {
    if ctx.version >= 8 {
        let mut groups = Vec::new();
        for g in request.groups {
            let wanted = g.topics.map(|ts| ts.into_iter().map(|t| (t.name, t.partition_indexes)).collect());
            let group = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            groups.push(match fetch(ctx, g.group_id.as_str(), wanted, request.require_stable).await {
                Ok(topics) => group.with_topics(
                    topics
                        .into_iter()
                        .map(|(name, answers)| {
                            let partitions = answers
                                .into_iter()
                                .map(|(index, c, code)| {
                                    let (offset, epoch, metadata) = fields(c);
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(index)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(metadata))
                                        .with_error_code(code)
                                })
                                .collect();
                            OffsetFetchResponseTopics::default().with_name(name).with_partitions(partitions)
                        })
                        .collect(),
                ),
                Err(code) => group.with_error_code(code),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    if ctx.version < 2 && !request.group_id.is_empty() && !ctx.allowed_group(request.group_id.as_str()).await {
        // v1 has no top-level error code: each partition asked for carries it, as Kafka answers.
        let topics = request.topics.into_iter().flatten().map(|t| {
            let partitions = t.partition_indexes.into_iter().map(|index| {
                OffsetFetchResponsePartition::default()
                    .with_partition_index(index)
                    .with_committed_offset(-1)
                    .with_committed_leader_epoch(-1)
                    .with_metadata(Some(StrBytes::default()))
                    .with_error_code(errors::GROUP_AUTHORIZATION_FAILED)
            });
            OffsetFetchResponseTopic::default().with_name(t.name).with_partitions(partitions.collect())
        });
        return OffsetFetchResponse::default().with_topics(topics.collect());
    }
    let wanted = request.topics.map(|ts| ts.into_iter().map(|t| (t.name, t.partition_indexes)).collect());
    let stable = ctx.version >= 7 && request.require_stable;
    match fetch(ctx, request.group_id.as_str(), wanted, stable).await {
        Ok(topics) => OffsetFetchResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(name, answers)| {
                    let partitions = answers
                        .into_iter()
                        .map(|(index, c, code)| {
                            let (offset, epoch, metadata) = fields(c);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(index)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(metadata))
                                .with_error_code(code)
                        })
                        .collect();
                    OffsetFetchResponseTopic::default().with_name(name).with_partitions(partitions)
                })
                .collect(),
        ),
        // v1 has no top-level error code: the error goes on no partition
        // either, as there are none; clients retry on the v2+ code.
        Err(code) => OffsetFetchResponse::default().with_error_code(code),
    }
}

fn fields(c: Option<Committed>) -> (i64, i32, StrBytes) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, StrBytes::from_string(c.metadata)),
        None => (-1, -1, StrBytes::default()),
    }
}

/// The committed offsets of `group` for `wanted` topics (every committed
/// partition when `None`), per Kafka topic name.
async fn fetch(
    ctx: &RequestContext<'_>,
    group: &str,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Vec<(TopicName, Vec<Answer>)>, i16> {
    if group.is_empty() {
        return Err(errors::INVALID_GROUP_ID);
    }
    if !ctx.allowed_group(group).await {
        return Err(errors::GROUP_AUTHORIZATION_FAILED);
    }
    let coordinator = &ctx.shared.coordinator;
    let mapper = &ctx.shared.topics;
    let key = ctx.group_key(group);
    let group = key.as_ref();
    let pending = if require_stable { coordinator.pending_offsets(group).await? } else { Vec::new() };
    let answer = |key: &(String, i32), c: Option<Committed>| {
        if pending.contains(key) {
            (key.1, None, errors::UNSTABLE_OFFSET_COMMIT)
        } else {
            (key.1, c, errors::NONE)
        }
    };
    let Some(wanted) = wanted else {
        let all = coordinator.fetch(group, None).await?;
        let mut by_topic: BTreeMap<String, Vec<Answer>> = BTreeMap::new();
        for (key, c) in all {
            // Only the topics the role may read are listed.
            if !ctx.permitted(Operation::Consume, &key.0).await {
                continue;
            }
            by_topic.entry(mapper.kafka_name(&key.0)).or_default().push(answer(&key, c));
        }
        return Ok(by_topic
            .into_iter()
            .map(|(name, answers)| (TopicName(StrBytes::from_string(name)), answers))
            .collect());
    };
    let mut keys = Vec::new();
    let mut slots = Vec::new();
    for (name, indexes) in &wanted {
        let pulsar = match mapper.pulsar(name.as_str()) {
            Ok(p) if !ctx.allowed(Operation::Consume, &p).await => Err(errors::TOPIC_AUTHORIZATION_FAILED),
            other => other,
        };
        for index in indexes {
            match &pulsar {
                Ok(p) => {
                    slots.push(Ok(keys.len()));
                    keys.push((p.clone(), *index));
                }
                Err(code) => slots.push(Err(*code)),
            }
        }
    }
    let found = if keys.is_empty() { Vec::new() } else { coordinator.fetch(group, Some(keys)).await? };
    let mut slots = slots.into_iter();
    let mut out = Vec::new();
    for (name, indexes) in wanted {
        let answers = indexes
            .into_iter()
            .map(|index| match slots.next() {
                Some(Ok(i)) => match found.get(i) {
                    Some((key, c)) => answer(key, c.clone()),
                    None => (index, None, errors::UNKNOWN_SERVER_ERROR),
                },
                Some(Err(code)) => (index, None, code),
                None => (index, None, errors::UNKNOWN_SERVER_ERROR),
            })
            .collect();
        out.push((name, answers));
    }
    Ok(out)
}
