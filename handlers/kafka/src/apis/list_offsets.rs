//! ListOffsets (key 2).
//!
//! Versions: 1-7. Earliest (-2) is the log start offset, latest (-1) the high
//! watermark; a timestamp gives the offset of the first record whose
//! timestamp is at least it (the ledger finds the entry by its max timestamp;
//! inside an uncompressed batch the record is found exactly, inside a
//! compressed one the batch's base offset is returned). No such record: -1.
//! Gaps: max timestamp (-3, v7) answers UNSUPPORTED_VERSION for that partition.

use kafka_protocol::{
    messages::{
        list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse},
        ListOffsetsRequest, ListOffsetsResponse,
    },
    protocol::VersionRange,
};
use polyport_handler_api::Host;

use super::RequestContext;
use crate::{
    errors,
    records::{first_delta_at_or_after, FORMAT_KAFKA},
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 7 };

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;

async fn lookup(host: &Host, ledger: &str, timestamp: i64) -> Result<(i64, i64), i16> {
    let error = |e: polyport_handler_api::HandlerError| errors::from_handler(&e);
    match timestamp {
        EARLIEST => Ok((-1, host.log_range(ledger).await.map_err(error)?.start as i64)),
        LATEST => Ok((-1, host.log_range(ledger).await.map_err(error)?.end as i64)),
        t if t < 0 => Err(errors::UNSUPPORTED_VERSION),
        t => match host.find_by_time(ledger, t).await.map_err(error)? {
            None => Ok((-1, -1)),
            Some(entry) => {
                let base = entry.meta.base_offset as i64;
                // The first message at or after `t` inside the entry: read
                // from the batch, or from the messages of an entry another
                // protocol wrote (or entryFormat=pulsar), as Fetch converts
                // them (timestamp = event time, else publish time).
                let delta = if entry.meta.format == FORMAT_KAFKA {
                    first_delta_at_or_after(&entry.payload, t)
                } else {
                    host.decode_entry(entry.meta.format, &entry.payload).ok().and_then(|messages| {
                        messages
                            .iter()
                            .position(|m| m.event_time_ms.unwrap_or(m.publish_time_ms) >= t)
                            .map(|i| i as i64)
                    })
                };
                let offset = delta.map_or(base, |d| base + d);
                // Never below the log start (records deleted inside that batch).
                let start = host.log_range(ledger).await.map_err(error)?.start as i64;
                Ok((entry.meta.max_timestamp_ms, offset.max(start)))
            }
        },
    }
}

/// Answers every partition.
pub async fn handle(ctx: &RequestContext<'_>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let mapper = &ctx.shared.topics;
    let mut topics = Vec::new();
    for topic in request.topics {
        let resolved = mapper.resolve(ctx.host(), topic.name.as_str(), false).await;
        let mut out = Vec::new();
        for p in topic.partitions {
            let mut response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            if ctx.version >= 4 {
                response = response.with_leader_epoch(0);
            }
            let ledger = resolved.ledger(p.partition_index);
            let result = match (ledger, ctx.host()) {
                (Ok(ledger), Some(host)) => lookup(host, &ledger, p.timestamp).await,
                (Ok(_), None) => Err(errors::KAFKA_STORAGE_ERROR),
                (Err(code), _) => Err(code),
            };
            out.push(match result {
                Ok((timestamp, offset)) => response.with_timestamp(timestamp).with_offset(offset),
                Err(code) => response.with_error_code(code).with_timestamp(-1).with_offset(-1),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(out));
    }
    ListOffsetsResponse::default().with_topics(topics)
}
