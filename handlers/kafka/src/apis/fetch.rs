//! Fetch (key 1).
//!
//! Versions: 4-12. Reads each partition from the entry holding the fetch
//! offset (a batch that starts before it is returned whole; the client skips
//! the records it did not ask for), within `partition_max_bytes` and the
//! request's `max_bytes` (the first batch is always whole). If less than
//! `min_bytes` is available the request waits up to `max_wait_ms` for any of
//! its partitions to grow. Stored batches are sent as written; only their
//! base offset field is set (the CRC does not cover it). The high watermark
//! and log start offset are the ledger's, exact at the time of the read.
//! Fetch sessions (KIP-227, v7+): see [`super::fetch_sessions`]; an
//! incremental answer carries only partitions with records, an error, or a
//! moved high watermark or log start offset, and returns as soon as one has.
//! Authorization ([`crate::authz`]): `consume` on each topic; each partition
//! of a topic refused answers TOPIC_AUTHORIZATION_FAILED (29) with no data.
//! Transactions ([`crate::txn_index`]): every answer carries the
//! partition's last stable offset (LSO, the first offset of its earliest
//! open transaction, else the high watermark); `isolation_level=1`
//! (read_committed) returns only batches before the LSO, with the aborted
//! transactions of the returned range, whose records the client drops
//! (control batches are returned as stored: clients skip them).
//! Gaps: topic ids (v13+) are not served.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;
use kafka_protocol::{
    messages::{
        fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData},
        BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName,
    },
    protocol::{StrBytes, VersionRange},
};
use polyport_handler_api::{
    storage::{Operation, ReadRequest},
    wait_any, Partition,
};

use super::{
    fetch_sessions::{Key, Plan},
    RequestContext,
};
use crate::{
    chunked::Splices,
    errors,
    records::{with_base_offset, FORMAT_KAFKA},
    topics::Resolved,
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 4, max: 12 };

/// `isolation_level` of read_committed readers.
const READ_COMMITTED: i8 = 1;

/// One partition to read.
struct Wanted {
    index: i32,
    partition: Result<Partition, i16>,
    offset: i64,
    max_bytes: i32,
}

fn error(index: i32, code: i16) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(code)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
}

/// What one read put in the response, per partition: (ledger, records, bytes).
type Counts = Vec<(String, u64, u64)>;

/// The transactions index readers see, and whether they read committed only.
#[derive(Clone, Copy)]
struct Isolation<'a> {
    index: &'a crate::txn_index::TxnIndex,
    read_committed: bool,
}

/// Reads every wanted partition once, within the request's byte budget;
/// `counts` gets what each partition's answer holds.
async fn read_all(
    wanted: &[Wanted],
    mut budget: usize,
    splices: &mut Splices,
    counts: &mut Counts,
    isolation: Isolation<'_>,
) -> (Vec<PartitionData>, usize) {
    counts.clear();
    // Reads run concurrently; the budget is applied in request order after.
    let reads = wanted.iter().map(|w| async move {
        let partition = w.partition.as_ref().map_err(|c| *c)?;
        let offset = u64::try_from(w.offset).map_err(|_| errors::OFFSET_OUT_OF_RANGE)?;
        let max_bytes = u32::try_from(w.max_bytes.max(0)).unwrap_or(0);
        let request = ReadRequest { offset, max_entries: u32::MAX, max_bytes, wait_ms: 0 };
        partition.read(request).await.map_err(|e| errors::from_handler(&e))
    });
    let results = join_all(reads).await;
    let mut total = 0;
    let mut out = Vec::with_capacity(wanted.len());
    for (w, result) in wanted.iter().zip(results) {
        match result {
            Err(code) => {
                let mut data = error(w.index, code);
                if code == errors::OFFSET_OUT_OF_RANGE {
                    if let Ok(partition) = &w.partition {
                        let range = partition.range().await.map(|r| (r.start as i64, r.end as i64)).unwrap_or((-1, -1));
                        tracing::debug!(partition = partition.name(), offset = w.offset, ?range, "fetch out of range");
                        data = data.with_high_watermark(range.1).with_log_start_offset(range.0);
                    }
                }
                out.push(data);
            }
            Ok(read) => {
                // The stored batches by reference (their base offsets
                // written in front); the response is spliced around them.
                let mut records: Vec<Bytes> = Vec::new();
                let mut unreadable = false;
                let (mut messages, mut bytes) = (0u64, 0u64);
                let ledger = w.partition.as_ref().map_or("", |p| p.name());
                let last_stable = isolation.index.last_stable(ledger, read.range.end);
                let mut upto = u64::try_from(w.offset).unwrap_or(0);
                for entry in &read.entries {
                    // The first batch of the response is whole whatever its size.
                    if total > 0 && entry.payload.len() > budget {
                        break;
                    }
                    // read_committed: nothing of an open transaction, nor after it.
                    if isolation.read_committed && entry.meta.base_offset >= last_stable {
                        break;
                    }
                    upto = entry.meta.base_offset + u64::from(entry.meta.count.max(1));
                    if entry.meta.format == FORMAT_KAFKA {
                        records.extend(with_base_offset(&entry.payload, entry.meta.base_offset));
                    } else {
                        // Written by another protocol: converted on this read only.
                        let converted = match &w.partition {
                            Ok(partition) => partition.convert_entry(entry).await,
                            Err(_) => continue,
                        };
                        let mut batch = BytesMut::new();
                        match converted
                            .and_then(|m| crate::convert::to_record_batch(m, entry.meta.base_offset, &mut batch))
                        {
                            Ok(()) => records.push(batch.freeze()),
                            Err(e) => {
                                tracing::warn!(partition = ?w.partition, offset = entry.meta.base_offset, error = %e,
                                    "entry not converted for a Kafka reader; the fetch stops before it");
                                // At the fetch offset itself the client would
                                // refetch forever: it gets an error instead.
                                unreadable = records.is_empty();
                                break;
                            }
                        }
                    }
                    budget = budget.saturating_sub(entry.payload.len());
                    total += entry.payload.len();
                    messages += u64::from(entry.meta.count);
                    bytes += entry.payload.len() as u64;
                }
                if let (Ok(partition), true) = (&w.partition, messages > 0) {
                    counts.push((partition.name().to_owned(), messages, bytes));
                }
                if unreadable {
                    out.push(
                        error(w.index, errors::CORRUPT_MESSAGE)
                            .with_high_watermark(read.range.end as i64)
                            .with_log_start_offset(read.range.start as i64),
                    );
                    continue;
                }
                // The aborted transactions of what is returned (read_committed).
                let aborted = (isolation.read_committed && !records.is_empty()).then(|| {
                    let from = u64::try_from(w.offset).unwrap_or(0);
                    isolation
                        .index
                        .aborted(ledger, from, upto, read.range.start)
                        .into_iter()
                        .map(|a| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_first_offset(a.first as i64)
                        })
                        .collect()
                });
                out.push(
                    PartitionData::default()
                        .with_partition_index(w.index)
                        .with_high_watermark(read.range.end as i64)
                        .with_last_stable_offset(last_stable as i64)
                        .with_log_start_offset(read.range.start as i64)
                        .with_preferred_read_replica(BrokerId(-1))
                        .with_aborted_transactions(aborted)
                        .with_records(Some(splices.records(records))),
                );
            }
        }
    }
    (out, total)
}

/// Serves a fetch, waiting for data if the request allows.
pub async fn handle(ctx: &RequestContext<'_>, request: FetchRequest) -> (FetchResponse, Splices) {
    let mut splices = Splices::default();
    let mapper = &ctx.shared.topics;
    let sessions = &ctx.shared.fetch_sessions;
    let requested: Vec<(Key, i64, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| ((t.topic.as_str().to_owned(), p.partition), p.fetch_offset, p.partition_max_bytes))
        })
        .collect();
    let forgotten: Vec<Key> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.as_str().to_owned(), *p)))
        .collect();
    // Sessions exist from v7 on.
    let plan = if ctx.version >= 7 {
        sessions.begin(request.session_id, request.session_epoch, &requested, &forgotten)
    } else {
        Plan::Sessionless
    };
    let (session_id, incremental, targets) = match plan {
        Plan::Error(code) => return (FetchResponse::default().with_error_code(code).with_session_id(0), splices),
        Plan::Sessionless => (0, false, requested),
        Plan::New { id } => (id, false, requested),
        Plan::Incremental { id, partitions } => {
            (id, true, partitions.into_iter().map(|(key, s)| (key, s.fetch_offset, s.max_bytes)).collect())
        }
    };

    let mut wanted = Vec::with_capacity(targets.len());
    let mut resolved: Vec<(String, Resolved)> = Vec::new();
    for ((topic, partition), offset, max_bytes) in &targets {
        if resolved.last().is_none_or(|(name, _)| name != topic) {
            let topic_resolved = if ctx.topic_denied(Operation::Consume, topic).await {
                Resolved::error(errors::TOPIC_AUTHORIZATION_FAILED)
            } else {
                mapper.resolve(ctx.host(), topic, false).await
            };
            resolved.push((topic.clone(), topic_resolved));
        }
        let ledger = resolved.last().map_or(Err(errors::UNKNOWN_SERVER_ERROR), |(_, r)| r.ledger(*partition));
        let handle = match (ledger, ctx.host()) {
            (Ok(ledger), Some(host)) => match mapper.partition(host, &ledger, false).await {
                Err(e) => {
                    // The ledger came from this topic's resolution: forget it if it is gone.
                    if let Some(Ok((pulsar, _))) = resolved.last().map(|(_, r)| r.topic()) {
                        mapper.forget_if_missing(pulsar, e.kind());
                    }
                    Err(errors::from_handler(&e))
                }
                // Its transactions known before anything is read.
                Ok(partition) => {
                    let topic = resolved.last().map(|(_, r)| (r.topic().ok(), r.settings().transactional));
                    let (pulsar, marked) = match topic {
                        Some((Some((pulsar, _)), marked)) => (pulsar, Some(marked)),
                        _ => ("", None),
                    };
                    match ctx.shared.txn_index.load_once(host, pulsar, &ledger, &partition, marked).await {
                        Ok(()) => Ok(partition),
                        Err(e) => {
                            tracing::warn!(partition = %ledger, error = %e, "transactions of the partition not loaded");
                            Err(errors::NOT_LEADER_OR_FOLLOWER)
                        }
                    }
                }
            },
            (Ok(_), None) => Err(errors::KAFKA_STORAGE_ERROR),
            (Err(code), _) => Err(code),
        };
        wanted.push(Wanted { index: *partition, partition: handle, offset: *offset, max_bytes: *max_bytes });
    }
    let budget = usize::try_from(request.max_bytes).unwrap_or(usize::MAX).max(1);
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let partitions = match ctx.host() {
        None => wanted.iter().map(|w| error(w.index, errors::KAFKA_STORAGE_ERROR)).collect(),
        Some(host) => {
            let mut counts = Counts::new();
            let isolation =
                Isolation { index: &ctx.shared.txn_index, read_committed: request.isolation_level == READ_COMMITTED };
            let (mut data, mut total) = read_all(&wanted, budget, &mut splices, &mut counts, isolation).await;
            let news = |data: &[PartitionData]| {
                data.iter().any(|d| d.error_code != errors::NONE || d.records.as_ref().is_some_and(|r| !r.is_empty()))
            };
            // Long poll: until min_bytes are there (an incremental fetch: any
            // news) or max_wait_ms is over, wait for any partition to grow
            // past what was read, then read again.
            let deadline = host.monotonic() + Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
            while total < min_bytes.max(1) && !wanted.is_empty() && !(incremental && news(&data)) {
                let left = deadline.saturating_sub(host.monotonic());
                let wait_ms = u32::try_from(left.as_millis()).unwrap_or(u32::MAX);
                if wait_ms == 0 {
                    break;
                }
                let waits: Vec<(&Partition, u64)> = wanted
                    .iter()
                    .zip(&data)
                    .filter(|(_, d)| d.error_code == errors::NONE)
                    .filter_map(|(w, d)| Some((w.partition.as_ref().ok()?, u64::try_from(d.high_watermark).ok()?)))
                    .collect();
                if waits.is_empty() || wait_any(&waits, wait_ms).await.is_none() {
                    break;
                }
                splices = Splices::default();
                (data, total) = read_all(&wanted, budget, &mut splices, &mut counts, isolation).await;
            }
            let metrics = ctx.shared.metrics();
            for (ledger, messages, bytes) in &counts {
                metrics.fetched(ledger, *messages, *bytes);
            }
            data
        }
    };
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    for (((topic, partition), _, _), data) in targets.iter().zip(partitions) {
        if session_id != 0 {
            let moved =
                sessions.sent(session_id, &(topic.clone(), *partition), data.high_watermark, data.log_start_offset);
            let has_records = data.records.as_ref().is_some_and(|r| !r.is_empty());
            // An incremental answer carries only partitions with news.
            if incremental && !moved && !has_records && data.error_code == errors::NONE {
                continue;
            }
        }
        match responses.last_mut() {
            Some(last) if last.topic.as_str() == topic => last.partitions.push(data),
            _ => responses.push(
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![data]),
            ),
        }
    }
    let codes = responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    super::count_partition_errors(ctx, codes);
    (FetchResponse::default().with_session_id(session_id).with_responses(responses), splices)
}
