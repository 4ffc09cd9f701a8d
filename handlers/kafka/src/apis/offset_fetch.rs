//! OffsetFetch (key 9).
//!
//! Versions: 1-7. Reads committed offsets back from the group's durable
//! cursors ([`super::offsets`]); -1 where the group has committed nothing.
//! With no topic list (v2+), every topic of `kafkaTenant/kafkaNamespace` on
//! which the group has a cursor is listed.
//! Gaps: metadata strings come back empty; several groups at once (v8+) are
//! not served.

use kafka_protocol::{
    messages::{
        offset_fetch_response::{OffsetFetchResponsePartition, OffsetFetchResponseTopic},
        OffsetFetchRequest, OffsetFetchResponse, TopicName,
    },
    protocol::{StrBytes, VersionRange},
};

use super::{offsets, RequestContext};
use crate::{errors, topics::kafka_partitions};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 7 };

fn partition(index: i32, result: Result<i64, i16>) -> OffsetFetchResponsePartition {
    let p =
        OffsetFetchResponsePartition::default().with_partition_index(index).with_metadata(Some(StrBytes::default()));
    match result {
        Ok(offset) => p.with_committed_offset(offset),
        Err(code) => p.with_committed_offset(-1).with_error_code(code),
    }
}

/// Answers the group's committed offsets.
pub async fn handle(ctx: &RequestContext<'_>, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let group = request.group_id.as_str();
    let mapper = &ctx.shared.topics;
    let Some(host) = ctx.host() else {
        return OffsetFetchResponse::default().with_error_code(errors::KAFKA_STORAGE_ERROR);
    };
    let all = request.topics.is_none();
    let wanted: Vec<(TopicName, Vec<i32>)> = match request.topics {
        Some(topics) => topics.into_iter().map(|t| (t.name, t.partition_indexes)).collect(),
        None => match host.list_topics(mapper.namespace()).await {
            Ok(list) => list
                .into_iter()
                .map(|(pulsar, n)| {
                    let name = TopicName(StrBytes::from_string(mapper.kafka_name(&pulsar)));
                    (name, (0..kafka_partitions(n) as i32).collect())
                })
                .collect(),
            Err(e) => return OffsetFetchResponse::default().with_error_code(errors::from_handler(&e)),
        },
    };
    let mut topics = Vec::new();
    for (name, indexes) in wanted {
        let resolved = mapper.resolve(Some(host), name.as_str(), false).await;
        let mut partitions = Vec::new();
        for index in indexes {
            let result = match resolved.ledger(index) {
                Ok(ledger) => offsets::committed(host, &ledger, group).await,
                Err(code) => Err(code),
            };
            // Asked for everything: only what the group committed.
            if all && !matches!(result, Ok(offset) if offset >= 0) {
                continue;
            }
            partitions.push(partition(index, result));
        }
        if all && partitions.is_empty() {
            continue;
        }
        topics.push(OffsetFetchResponseTopic::default().with_name(name).with_partitions(partitions));
    }
    OffsetFetchResponse::default().with_topics(topics)
}
