//! ListOffsets (key 2).
//!
//! Versions: 1-7. Earliest (-2) is the log start offset, latest (-1) the high
//! watermark; a timestamp gives the offset and timestamp of the first record
//! whose timestamp is at least it (the ledger finds the entry by its max
//! timestamp, then the record is found inside it: in place in an
//! uncompressed batch, by decoding a compressed one, or among the messages
//! of an entry another protocol wrote); max timestamp (-3, v7) the offset
//! and timestamp of the first record holding the partition's largest
//! timestamp (KIP-734). No such record: -1. With `isolation_level=1`
//! (read_committed, v2+) latest is the last stable offset
//! ([`crate::txn_index`]).
//! Authorization ([`crate::authz`]): `lookup` on each topic (`produce` or
//! `consume`, as Kafka asks DESCRIBE, which READ or WRITE imply); each
//! partition of a topic refused answers TOPIC_AUTHORIZATION_FAILED (29).

use kafka_protocol::{
    messages::{
        list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse},
        ListOffsetsRequest, ListOffsetsResponse,
    },
    protocol::VersionRange,
};
use polyport_handler_api::{
    storage::{Entry, Operation, ReadRequest},
    HandlerError, Host, Partition,
};

use super::RequestContext;
use crate::{
    errors,
    records::{first_at_or_after, FORMAT_KAFKA},
    topics::Resolved,
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 7 };

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
const MAX_TIMESTAMP: i64 = -3;

fn error(e: HandlerError) -> i16 {
    errors::from_handler(&e)
}

/// (timestamp, offset) of the first record at or after `t`.
async fn by_time(p: &Partition, t: i64) -> Result<(i64, i64), i16> {
    let Some(entry) = p.find_by_time(t).await.map_err(error)? else { return Ok((-1, -1)) };
    let base = entry.meta.base_offset as i64;
    let (delta, timestamp) = record_at_or_after(p.host(), &entry, t).unwrap_or((0, entry.meta.max_timestamp_ms));
    // Never below the log start (records deleted inside that batch).
    let start = p.range().await.map_err(error)?.start as i64;
    Ok((timestamp, (base + delta).max(start)))
}

/// The offset delta and timestamp of the first message at or after `t`
/// inside `entry`: read from the batch, or from the messages of an entry
/// another protocol wrote (or entryFormat=pulsar), as Fetch converts them
/// (timestamp = event time, else publish time).
fn record_at_or_after(host: &Host, entry: &Entry, t: i64) -> Option<(i64, i64)> {
    if entry.meta.format == FORMAT_KAFKA {
        return first_at_or_after(&entry.payload, t);
    }
    let messages = host.decode_entry(entry.meta.format, &entry.payload).ok()?;
    messages
        .iter()
        .map(|m| m.event_time_ms.unwrap_or(m.publish_time_ms))
        .enumerate()
        .find(|(_, ts)| *ts >= t)
        .map(|(i, ts)| (i as i64, ts))
}

/// The partition's largest timestamp. The ledger indexes each entry's max
/// timestamp (`find_by_time` answers the first entry reaching a time), not
/// the partition's, so it is searched: from the last entry's, climbing to
/// each later record a few times (timestamps mostly grow with offsets),
/// then by bisection up to `i64::MAX`; at most about 70 index lookups.
async fn max_timestamp(p: &Partition) -> Result<Option<i64>, i16> {
    let range = p.range().await.map_err(error)?;
    if range.end <= range.start {
        return Ok(None);
    }
    let last = ReadRequest { offset: range.end - 1, max_entries: 1, max_bytes: 1, wait_ms: 0 };
    let Some(last) = p.read(last).await.map_err(error)?.entries.pop() else { return Ok(None) };
    let mut best = last.meta.max_timestamp_ms;
    for _ in 0..8 {
        let Some(above) = best.checked_add(1) else { return Ok(Some(best)) };
        match p.find_by_time(above).await.map_err(error)? {
            Some(e) => best = e.meta.max_timestamp_ms.max(above),
            None => return Ok(Some(best)),
        }
    }
    // Largest t that some entry reaches: best reaches, hi + 1 does not.
    let mut hi = i64::MAX;
    while best < hi {
        // The upper middle, in i128: best may be negative (a raw client's
        // timestamps), and hi - best would overflow i64.
        let mid = ((i128::from(best) + i128::from(hi) + 1).div_euclid(2)) as i64;
        match p.find_by_time(mid).await.map_err(error)? {
            Some(e) => best = e.meta.max_timestamp_ms.max(mid),
            None => hi = mid - 1,
        }
    }
    Ok(Some(best))
}

async fn lookup(p: &Partition, timestamp: i64) -> Result<(i64, i64), i16> {
    match timestamp {
        EARLIEST => Ok((-1, p.range().await.map_err(error)?.start as i64)),
        LATEST => Ok((-1, p.range().await.map_err(error)?.end as i64)),
        MAX_TIMESTAMP => match max_timestamp(p).await? {
            Some(t) => by_time(p, t).await,
            None => Ok((-1, -1)),
        },
        t if t < 0 => Err(errors::UNSUPPORTED_VERSION),
        t => by_time(p, t).await,
    }
}

/// Answers every partition.
pub async fn handle(ctx: &RequestContext<'_>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let mapper = &ctx.shared.topics;
    let mut topics = Vec::new();
    for topic in request.topics {
        // Kafka asks DESCRIBE: here `lookup` (produce or consume).
        let resolved = if ctx.topic_denied(Operation::Lookup, topic.name.as_str()).await {
            Resolved::error(errors::TOPIC_AUTHORIZATION_FAILED)
        } else {
            mapper.resolve(ctx.host(), topic.name.as_str(), false).await
        };
        let mut out = Vec::new();
        for p in topic.partitions {
            let mut response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            if ctx.version >= 4 {
                response = response.with_leader_epoch(0);
            }
            let ledger = resolved.ledger(p.partition_index);
            let result = match (ledger, ctx.host()) {
                (Ok(ledger), Some(host)) => match mapper.partition(host, &ledger, false).await {
                    Ok(partition) if request.isolation_level == 1 && p.timestamp == LATEST => {
                        let pulsar = resolved.topic().map_or("", |(t, _)| t);
                        let txns = &ctx.shared.txn_index;
                        let marked = Some(resolved.settings().transactional);
                        match txns.load_once(host, pulsar, &ledger, &partition, marked).await {
                            Ok(()) => partition
                                .range()
                                .await
                                .map(|r| (-1, txns.last_stable(&ledger, r.end) as i64))
                                .map_err(error),
                            Err(e) => Err(error(e)),
                        }
                    }
                    Ok(partition) => lookup(&partition, p.timestamp).await,
                    Err(e) => Err(error(e)),
                },
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
