//! TxnOffsetCommit (key 28).
//!
//! Versions: 0-4. A transactional producer commits a group's offsets inside
//! its transaction (`send_offsets_to_transaction`): the group's
//! coordinator partition stores them as pending (durable in its log) and
//! they become the group's committed offsets only when the transaction
//! commits ([`crate::coordinator::markers`]); an abort drops them. Until
//! then OffsetFetch answers the previous commit, and UNSTABLE_OFFSET_COMMIT
//! to a `require_stable` fetch. Members of a consumer group commit with
//! their generation (v3+, checked as OffsetCommit checks it); -1 is not
//! checked.
//! Authorization ([`crate::authz`]): as OffsetCommit (the group, then each
//! topic with `consume`).
//! Gaps: the coordinator does not check that AddOffsetsToTxn added the
//! group first (nor does Kafka's group coordinator). v5 (transaction
//! version 2) is not served.

use std::collections::HashMap;

use kafka_protocol::{
    messages::{
        txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic},
        TxnOffsetCommitRequest, TxnOffsetCommitResponse,
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
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

/// Stores the offsets as pending in the producer's transaction.
pub async fn handle(ctx: &RequestContext<'_>, request: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let group = request.group_id.0.to_string();
    let now_ms =
        ctx.host().map_or(0, |h| h.now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64));
    let mapper = &ctx.shared.topics;
    let mut slots: Vec<Vec<(i32, Result<usize, i16>)>> = Vec::new();
    let mut entries = Vec::new();
    let mut resolved_topics = HashMap::new();
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
            generation: if ctx.version >= 3 { request.generation_id } else { -1 },
        };
        ctx.shared.coordinator.txn_commit(&ctx.group_key(&group), request.producer_id.0, who, entries).await
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
                    TxnOffsetCommitResponsePartition::default().with_partition_index(index).with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
