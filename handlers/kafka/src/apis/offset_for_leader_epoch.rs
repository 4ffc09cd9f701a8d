//! OffsetForLeaderEpoch (key 23).
//!
//! Versions: 2-4. This broker is every partition's only leader, at epoch 0
//! forever (Metadata and ListOffsets report 0), so epoch 0 ends at the high
//! watermark: a request for epoch 0 (or -1, no epoch) answers epoch 0 and the
//! high watermark, which is what consumers validating their position after a
//! metadata change need. A `current_leader_epoch` or `leader_epoch` above 0
//! is one this broker never had: UNKNOWN_LEADER_EPOCH (75).
//! Gaps: Kafka answers a requested epoch above the latest with epoch -1 and
//! offset -1 and no error; here it is UNKNOWN_LEADER_EPOCH (no such epoch can
//! reach a client, which only learns epochs from this broker). `replica_id`
//! (v3+) is ignored: there are no follower replicas.
//! Authorization ([`crate::authz`]): `lookup` on each topic (`produce` or
//! `consume`, as Kafka asks DESCRIBE); each partition of a topic refused
//! answers TOPIC_AUTHORIZATION_FAILED (29).

use kafka_protocol::{
    messages::{
        offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult},
        OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
    },
    protocol::VersionRange,
};
use polyport_handler_api::storage::Operation;

use super::RequestContext;
use crate::{errors, topics::Resolved};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 2, max: 4 };

/// The only leader epoch there is.
const EPOCH: i32 = 0;

/// Answers every partition.
pub async fn handle(ctx: &RequestContext<'_>, request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let mapper = &ctx.shared.topics;
    let mut topics = Vec::new();
    for topic in request.topics {
        // Kafka asks DESCRIBE: here `lookup` (produce or consume).
        let resolved = if ctx.topic_denied(Operation::Lookup, topic.topic.as_str()).await {
            Resolved::error(errors::TOPIC_AUTHORIZATION_FAILED)
        } else {
            mapper.resolve(ctx.host(), topic.topic.as_str(), false).await
        };
        let mut out = Vec::new();
        for p in topic.partitions {
            let ledger = resolved.ledger(p.partition);
            let result = match (ledger, ctx.host()) {
                (Err(code), _) => Err(code),
                (Ok(_), _) if p.current_leader_epoch > EPOCH || p.leader_epoch > EPOCH => {
                    Err(errors::UNKNOWN_LEADER_EPOCH)
                }
                (Ok(_), None) => Err(errors::KAFKA_STORAGE_ERROR),
                (Ok(ledger), Some(host)) => match mapper.partition(host, &ledger, false).await {
                    Ok(partition) => partition.range().await.map(|r| r.end as i64),
                    Err(e) => Err(e),
                }
                .map_err(|e| errors::from_handler(&e)),
            };
            let response = EpochEndOffset::default().with_partition(p.partition);
            out.push(match result {
                Ok(end_offset) => response.with_leader_epoch(EPOCH).with_end_offset(end_offset),
                Err(code) => response.with_error_code(code),
            });
        }
        topics.push(OffsetForLeaderTopicResult::default().with_topic(topic.topic).with_partitions(out));
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
