//! A topic's stats as Pulsar's admin v2 writes them (the tenant's admins):
//!
//! - `GET …/{topic}/stats`: `TopicStats` of a non-partitioned topic or one
//!   partition: counters since the topic was loaded, rates over the last
//!   `statsUpdateFrequencyInSecs`, storage size, publishers, and every
//!   subscription with its backlog and consumers. Kafka groups are
//!   subscriptions too (their cursors): `subscriptionProperties` names the
//!   protocol that owns a cursor (`{"owner": "kafka"}`), and a cursor no
//!   Pulsar consumer uses has no `type`;
//! - `GET …/{topic}/partitioned-stats[?perPartition=true]`: the sum over
//!   partitions, with `metadata.partitions` and each partition's stats;
//! - `GET …/{topic}/internalStats`: the managed ledger: segments (`ledgers`,
//!   one per segment, by ledger id), entries, size, and each cursor's
//!   mark-delete and read positions (`ledgerId:entryId`);
//! - `GET …/{topic}/lastMessageId`.
//!
//! Gaps: `partitioned-internalStats`, replication and deduplication stats,
//! per-consumer rates.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use axum::{
    extract::{Path, Query},
    http::{HeaderMap, StatusCode},
    routing::get,
    Json, Router,
};
use polyport_ledger::ManagedLedger;
use serde_json::{json, Value};

use super::{require_tenant_admin, topic_name, topics::partitions_of, ApiError, Shared};
use crate::{pulsar::subscription::SubCommand, topics::TopicName};

pub(super) fn routes() -> Router<std::sync::Arc<super::AdminState>> {
    let base = "/admin/v2/persistent/{tenant}/{namespace}/{topic}";
    Router::new()
        .route(&format!("{base}/stats"), get(stats))
        .route(&format!("{base}/partitioned-stats"), get(partitioned_stats))
        .route(&format!("{base}/internalStats"), get(internal_stats))
        .route(&format!("{base}/lastMessageId"), get(last_message_id))
}

/// How long stats wait for a subscription's task to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// The ledger of a partition (opened if it was not: Pulsar loads a topic
/// to answer its stats too).
pub(super) async fn ledger_of(state: &Shared, partition: &TopicName) -> Result<Arc<ManagedLedger>, ApiError> {
    Ok(state.topics.ledger(partition, false).await?)
}

/// A non-partitioned topic or one partition, with its ledger, for the calls
/// that take one: a partitioned topic's name is refused with `status`,
/// naming `what` was asked.
pub(super) async fn one_partition(
    state: &Shared,
    headers: &HeaderMap,
    (tenant, namespace, topic): (&str, &str, &str),
    what: &str,
    status: StatusCode,
) -> Result<(TopicName, Arc<ManagedLedger>), ApiError> {
    require_tenant_admin(state, headers, tenant).await?;
    let name = topic_name(tenant, namespace, topic)?;
    let (count, _) = partitions_of(state, &name).await?;
    if count > 0 {
        return Err(ApiError::new(
            status,
            format!("{name} is a partitioned topic: ask one of its partitions for its {what}"),
        ));
    }
    let ledger = ledger_of(state, &name).await?;
    Ok((name, ledger))
}

/// `ledgerId:entryId` of the entry holding `offset`.
pub(super) async fn position_text(ledger: &Arc<ManagedLedger>, offset: u64) -> String {
    match ledger.nonblocking(move |l| l.position(offset)).await {
        Ok(p) => format!("{}:{}", p.ledger_id, p.entry_id),
        Err(_) => "-1:-1".to_owned(),
    }
}

fn sub_type_name(t: crate::pulsar::proto::command_subscribe::SubType) -> &'static str {
    use crate::pulsar::proto::command_subscribe::SubType;
    match t {
        SubType::Exclusive => "Exclusive",
        SubType::Shared => "Shared",
        SubType::Failover => "Failover",
        SubType::KeyShared => "Key_Shared",
    }
}

/// One partition's `TopicStats`.
pub(super) async fn partition_stats(state: &Shared, partition: &TopicName) -> Result<Value, ApiError> {
    let ledger = ledger_of(state, partition).await?;
    let s = ledger.stats().snapshot();
    let storage_size: u64 = ledger.segments().iter().map(|seg| seg.bytes).sum();
    let ledger_name = partition.to_string();
    let publishers: Vec<Value> = state
        .pulsar
        .as_ref()
        .map(|p| p.producers_by_topic.publishers(&ledger_name))
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            json!({
                "producerId": p.producer_id,
                "producerName": p.name,
                "accessMode": if p.exclusive { "Exclusive" } else { "Shared" },
                "connectedSince": rfc3339_ms(p.since_ms),
                "msgRateIn": 0.0, "msgThroughputIn": 0.0, "averageMsgSize": 0.0,
            })
        })
        .collect();
    let mut running = BTreeMap::new();
    if let Some(pulsar) = &state.pulsar {
        for (name, sender) in pulsar.running_subscriptions(&ledger_name) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if sender.send(SubCommand::Stats(tx)).await.is_ok() {
                if let Ok(Ok(snapshot)) = tokio::time::timeout(ASK_TIMEOUT, rx).await {
                    running.insert(name, snapshot);
                }
            }
        }
    }
    let mut subscriptions = serde_json::Map::new();
    for cursor in ledger.cursors() {
        let mut sub = json!({
            "msgBacklog": cursor.backlog_messages,
            "msgBacklogNoDelayed": cursor.backlog_messages,
            "backlogSize": 0,
            "msgRateOut": 0.0, "msgThroughputOut": 0.0, "msgRateRedeliver": 0.0, "msgRateExpired": 0.0,
            "bytesOutCounter": 0, "msgOutCounter": 0,
            "unackedMessages": 0,
            "isDurable": cursor.durable,
            "isReplicated": false,
            "consumers": [],
            "subscriptionProperties": {},
        });
        if let Some(owner) = ledger.stats().cursor_owner(&cursor.name) {
            sub["subscriptionProperties"] = json!({ "owner": owner });
        }
        if let Some(snapshot) = running.get(&cursor.name) {
            sub["type"] = json!(sub_type_name(snapshot.sub_type));
            sub["unackedMessages"] = json!(snapshot.consumers.iter().map(|c| c.unacked).sum::<u64>());
            sub["consumers"] = json!(snapshot
                .consumers
                .iter()
                .map(|c| json!({
                    "consumerName": format!("{}-{}", c.connection, c.consumer_id),
                    "availablePermits": c.permits,
                    "unackedMessages": c.unacked,
                    "priorityLevel": c.priority,
                    "msgRateOut": 0.0, "msgThroughputOut": 0.0,
                }))
                .collect::<Vec<_>>());
        }
        subscriptions.insert(cursor.name.clone(), sub);
    }
    Ok(json!({
        "msgRateIn": s.rate_in,
        "msgThroughputIn": s.throughput_in,
        "msgRateOut": s.rate_out,
        "msgThroughputOut": s.throughput_out,
        "bytesInCounter": s.bytes_in,
        "msgInCounter": s.messages_in,
        "bytesOutCounter": s.bytes_out,
        "msgOutCounter": s.messages_out,
        "averageMsgSize": if s.messages_in > 0 { s.bytes_in as f64 / s.messages_in as f64 } else { 0.0 },
        "msgChunkPublished": false,
        "storageSize": storage_size,
        "backlogSize": 0,
        "offloadedStorageSize": 0,
        "publishers": publishers,
        "waitingPublishers": 0,
        "subscriptions": subscriptions,
        "replication": {},
        "deduplicationStatus": "Disabled",
        "nonContiguousDeletedMessagesRanges": 0,
        "nonContiguousDeletedMessagesRangesSerializedSize": 0,
    }))
}

/// Unix ms as Pulsar's admin API writes times (ISO-8601, UTC, milliseconds).
pub(super) fn rfc3339_ms(ms: i64) -> String {
    let system = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(system).to_string()
}

async fn stats(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    // A partitioned topic's name is no topic of its own (Pulsar: not found).
    let path = (tenant.as_str(), namespace.as_str(), topic.as_str());
    let (name, _) = one_partition(&state, &headers, path, "stats", StatusCode::NOT_FOUND).await?;
    Ok(Json(partition_stats(&state, &name).await?))
}

/// Adds `b`'s numbers into `a` (partitioned stats); subscriptions merge by
/// name, publishers and consumers are listed together.
fn accumulate(a: &mut Value, b: &Value) {
    const SUMMED: &[&str] = &[
        "msgRateIn",
        "msgThroughputIn",
        "msgRateOut",
        "msgThroughputOut",
        "bytesInCounter",
        "msgInCounter",
        "bytesOutCounter",
        "msgOutCounter",
        "storageSize",
        "backlogSize",
    ];
    for key in SUMMED {
        let sum = a[key].as_f64().unwrap_or(0.0) + b[key].as_f64().unwrap_or(0.0);
        a[key] = if b[key].is_u64() { json!(sum as u64) } else { json!(sum) };
    }
    if let (Some(mine), Some(theirs)) = (a["publishers"].as_array_mut(), b["publishers"].as_array()) {
        mine.extend(theirs.iter().cloned());
    }
    let Some(subs) = b["subscriptions"].as_object() else { return };
    for (name, sub) in subs {
        let entry = &mut a["subscriptions"][name];
        if entry.is_null() {
            *entry = sub.clone();
            continue;
        }
        for key in ["msgBacklog", "msgBacklogNoDelayed", "unackedMessages"] {
            entry[key] = json!(entry[key].as_u64().unwrap_or(0) + sub[key].as_u64().unwrap_or(0));
        }
        if let (Some(mine), Some(theirs)) = (entry["consumers"].as_array_mut(), sub["consumers"].as_array()) {
            mine.extend(theirs.iter().cloned());
        }
        if entry.get("type").is_none() {
            if let Some(t) = sub.get("type") {
                entry["type"] = t.clone();
            }
        }
    }
}

async fn partitioned_stats(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    let name = topic_name(&tenant, &namespace, &topic)?;
    let (count, partitions) = partitions_of(&state, &name).await?;
    if count == 0 {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("Partitioned Topic not found: {name}")));
    }
    let per_partition = query.get("perPartition").is_none_or(|v| v != "false");
    let mut total = json!({
        "msgRateIn": 0.0, "msgThroughputIn": 0.0, "msgRateOut": 0.0, "msgThroughputOut": 0.0,
        "bytesInCounter": 0, "msgInCounter": 0, "bytesOutCounter": 0, "msgOutCounter": 0,
        "storageSize": 0, "backlogSize": 0, "averageMsgSize": 0.0,
        "publishers": [], "subscriptions": {}, "replication": {},
        "metadata": { "partitions": count },
        "partitions": {},
    });
    for partition in &partitions {
        let stats = partition_stats(&state, partition).await?;
        accumulate(&mut total, &stats);
        if per_partition {
            total["partitions"][partition.to_string()] = stats;
        }
    }
    let (bytes, messages) =
        (total["bytesInCounter"].as_f64().unwrap_or(0.0), total["msgInCounter"].as_f64().unwrap_or(0.0));
    total["averageMsgSize"] = json!(if messages > 0.0 { bytes / messages } else { 0.0 });
    Ok(Json(total))
}

async fn internal_stats(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let path = (tenant.as_str(), namespace.as_str(), topic.as_str());
    let (_, ledger) = one_partition(&state, &headers, path, "internalStats", StatusCode::NOT_FOUND).await?;
    let range = ledger.range();
    let segments = ledger.segments();
    let last = segments.last().cloned();
    let ledgers: Vec<Value> = segments
        .iter()
        .map(|s| json!({ "ledgerId": s.ledger_id, "entries": s.entries, "size": s.bytes, "offloaded": false, "underReplicated": false }))
        .collect();
    let last_confirmed = if range.end > range.start {
        position_text(&ledger, range.end - 1).await
    } else {
        format!("{}:-1", last.as_ref().map_or(-1, |s| s.ledger_id as i64))
    };
    let mut cursors = serde_json::Map::new();
    let stats = ledger.stats().snapshot();
    for cursor in ledger.cursors() {
        let mark_delete = if cursor.mark_delete > range.start {
            position_text(&ledger, cursor.mark_delete - 1).await
        } else {
            format!("{}:-1", segments.first().map_or(-1, |s| s.ledger_id as i64))
        };
        let read = if cursor.mark_delete < range.end {
            position_text(&ledger, cursor.mark_delete).await
        } else {
            format!("{}:{}", last.as_ref().map_or(-1, |s| s.ledger_id as i64), last.as_ref().map_or(0, |s| s.entries))
        };
        let individually: Vec<String> = cursor.acked_ranges.iter().map(|(s, e)| format!("[{s}..{e})")).collect();
        cursors.insert(
            cursor.name.clone(),
            json!({
                "markDeletePosition": mark_delete,
                "readPosition": read,
                "waitingReadOp": false,
                "pendingReadOps": 0,
                "messagesConsumedCounter": cursor.mark_delete.saturating_sub(range.start),
                "cursorLedger": -1,
                "cursorLedgerLastEntry": -1,
                "individuallyDeletedMessages": format!("[{}]", individually.join(",")),
                "lastLedgerSwitchTimestamp": "",
                "state": "Open",
                "active": stats.consumers > 0,
                "numberOfEntriesSinceFirstNotAckedMessage": cursor.backlog_entries,
                "totalNonContiguousDeletedMessagesRange": cursor.acked_ranges.len(),
                "subscriptionHavePendingRead": false,
                "subscriptionHavePendingReplayRead": false,
                "properties": {},
            }),
        );
    }
    Ok(Json(json!({
        "entriesAddedCounter": stats.entries_in,
        "numberOfEntries": segments.iter().map(|s| s.entries).sum::<u64>(),
        "totalSize": segments.iter().map(|s| s.bytes).sum::<u64>(),
        "currentLedgerEntries": last.as_ref().map_or(0, |s| s.entries),
        "currentLedgerSize": last.as_ref().map_or(0, |s| s.bytes),
        "lastLedgerCreatedTimestamp": "",
        "waitingCursorsCount": 0,
        "pendingAddEntriesCount": 0,
        "lastConfirmedEntry": last_confirmed,
        "state": "LedgerOpened",
        "ledgers": ledgers,
        "cursors": cursors,
        "schemaLedgers": [],
    })))
}

/// A message id as Pulsar's admin JSON writes one.
pub(super) async fn message_id_json(ledger: &Arc<ManagedLedger>, offset: u64) -> Result<Value, ApiError> {
    let p = ledger
        .nonblocking(move |l| l.position(offset))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let entry_count = ledger
        .nonblocking(move |l| l.read_now(offset, polyport_ledger::ReadLimits { max_entries: 1, max_bytes: 1 }))
        .await
        .ok()
        .and_then(|b| b.entries.first().map(|e| e.meta.count))
        .unwrap_or(1);
    let batch_index = if entry_count > 1 { i64::from(p.batch_index) } else { -1 };
    Ok(json!({ "ledgerId": p.ledger_id, "entryId": p.entry_id, "partitionIndex": -1, "batchIndex": batch_index }))
}

async fn last_message_id(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let path = (tenant.as_str(), namespace.as_str(), topic.as_str());
    let (_, ledger) = one_partition(&state, &headers, path, "last message id", StatusCode::METHOD_NOT_ALLOWED).await?;
    let range = ledger.range();
    if range.end == range.start {
        // Pulsar's "earliest": nothing was written (or everything was deleted).
        return Ok(Json(json!({ "ledgerId": -1, "entryId": -1, "partitionIndex": -1 })));
    }
    Ok(Json(message_id_json(&ledger, range.end - 1).await?))
}
