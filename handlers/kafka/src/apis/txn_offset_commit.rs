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

use super::{
    offset_commit::{answers, entries, Asked},
    RequestContext,
};
use crate::coordinator::Committer;
use kafka_protocol::{
    messages::{
        txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic},
        TxnOffsetCommitRequest, TxnOffsetCommitResponse,
    },
    protocol::VersionRange,
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

/// Stores the offsets as pending in the producer's transaction.
pub async fn handle(ctx: &RequestContext<'_>, request: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
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
            generation: if ctx.version >= 3 { request.generation_id } else { -1 },
        };
        ctx.shared.coordinator.txn_commit(&ctx.group_key(&group), request.producer_id.0, who, entries).await
    };
    let topics = request
        .topics
        .into_iter()
        .zip(answers(slots, &codes))
        .map(|(topic, codes)| {
            let partitions = codes
                .into_iter()
                .map(|(index, code)| {
                    TxnOffsetCommitResponsePartition::default().with_partition_index(index).with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
