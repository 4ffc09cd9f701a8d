//! OffsetCommit (key 8).
//!
//! Versions: 2-8. Standalone consumers (generation -1, no member id) commit
//! offsets of any partition; each is stored as the group's durable cursor on
//! that partition ([`super::offsets`]), so it survives restarts and shows in
//! cursor listings.
//! Gaps: commit metadata strings are not kept; commits from group members
//! (generation >= 0) answer ILLEGAL_GENERATION, as JoinGroup is not served
//! yet; an offset past the log end is stored as the log end.

use futures_util::future::join_all;
use kafka_protocol::{
    messages::{
        offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic},
        OffsetCommitRequest, OffsetCommitResponse,
    },
    protocol::VersionRange,
};

use super::{offsets, RequestContext};
use crate::errors;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 2, max: 8 };

const ILLEGAL_GENERATION: i16 = 22;
const INVALID_GROUP_ID: i16 = 24;

/// Stores every committed offset.
pub async fn handle(ctx: &RequestContext<'_>, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = request.group_id.as_str().to_owned();
    let refusal = if group.is_empty() {
        Some(INVALID_GROUP_ID)
    } else if request.generation_id_or_member_epoch >= 0 {
        Some(ILLEGAL_GENERATION)
    } else {
        None
    };
    let mapper = &ctx.shared.topics;
    let mut topics = Vec::new();
    for topic in request.topics {
        let resolved = mapper.resolve(ctx.host(), topic.name.as_str(), false).await;
        let work = topic.partitions.into_iter().map(|p| {
            let (resolved, group) = (&resolved, &group);
            async move {
                let result = match (refusal, resolved.ledger(p.partition_index), ctx.host()) {
                    (Some(code), _, _) | (None, Err(code), _) => Err(code),
                    (None, Ok(_), None) => Err(errors::KAFKA_STORAGE_ERROR),
                    (None, Ok(ledger), Some(host)) => offsets::commit(host, &ledger, group, p.committed_offset).await,
                };
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(result.err().unwrap_or(errors::NONE))
            }
        });
        let partitions = join_all(work).await;
        topics.push(OffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(partitions));
    }
    OffsetCommitResponse::default().with_topics(topics)
}
