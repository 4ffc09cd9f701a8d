//! Subscriptions and messages, as Pulsar's admin v2 serves them (the
//! tenant's admins). On a partitioned topic each call applies to every
//! partition, as in Pulsar.
//!
//! - `GET …/{topic}/subscriptions`: names (Kafka groups' cursors included);
//! - `PUT …/subscription/{sub}` with a message id (earliest, latest or a
//!   position): a durable cursor there (409 if it exists);
//! - `DELETE …/subscription/{sub}[?force=true]`: 412 while consumers are
//!   connected, unless forced (they are closed);
//! - `POST …/subscription/{sub}/resetcursor/{timestamp}` and
//!   `…/resetcursor` with a message id: the cursor moves there, back or
//!   forth; connected consumers are closed and resubscribe from it;
//! - `POST …/subscription/{sub}/skip/{n}`, `…/skip_all`,
//!   `…/expireMessages/{seconds}`, `…/all_subscription/expireMessages/{seconds}`:
//!   acknowledgements, so consumers stay connected;
//! - `GET …/subscription/{sub}/position/{n}` (peek) and
//!   `GET …/examinemessage?initialPosition=earliest|latest&messagePosition=n`:
//!   the n-th entry (1-based) from the subscription's mark-delete, or from
//!   the first or last entry, as Pulsar's raw message response (payload in
//!   the body, metadata in `X-Pulsar-*` headers; a batch as Pulsar's
//!   uncompressed batch format). Entries other protocols wrote go through
//!   their converter.
//!
//! Gaps: `replicated` subscriptions, subscription properties, `analyzeBacklog`.

use std::{collections::HashMap, sync::Arc};

use axum::{
    body::Bytes,
    extract::{Path, Query},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use polyport_ledger::{Ack, InitialPosition, ManagedLedger, ReadLimits};
use serde::Deserialize;

use super::{
    json_body, require_tenant_admin,
    stats::{ledger_of, one_partition, rfc3339_ms},
    topic_name,
    topics::partitions_of,
    ApiError, Shared,
};
use crate::{
    pulsar::subscription::{DeleteRefused, SeekTarget, SubCommand},
    topics::{now_ms, TopicName},
};

pub(super) fn routes() -> Router<std::sync::Arc<super::AdminState>> {
    let base = "/admin/v2/persistent/{tenant}/{namespace}/{topic}";
    Router::new()
        .route(&format!("{base}/subscriptions"), get(list))
        .route(&format!("{base}/subscription/{{sub}}"), axum::routing::put(create).delete(delete))
        .route(&format!("{base}/subscription/{{sub}}/resetcursor/{{timestamp}}"), post(reset_to_time))
        .route(&format!("{base}/subscription/{{sub}}/resetcursor"), post(reset_to_id))
        .route(&format!("{base}/subscription/{{sub}}/skip/{{count}}"), post(skip))
        .route(&format!("{base}/subscription/{{sub}}/skip_all"), post(skip_all))
        .route(&format!("{base}/subscription/{{sub}}/expireMessages/{{seconds}}"), post(expire))
        .route(&format!("{base}/all_subscription/expireMessages/{{seconds}}"), post(expire_all))
        .route(&format!("{base}/subscription/{{sub}}/position/{{n}}"), get(peek))
        .route(&format!("{base}/examinemessage"), get(examine))
}

type TopicPath = Path<(String, String, String)>;
type SubPath = Path<(String, String, String, String)>;

/// A message id as Pulsar's clients send it (`MessageIdImpl`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageId {
    ledger_id: i64,
    entry_id: i64,
    #[serde(default = "minus_one")]
    batch_index: i32,
}

fn minus_one() -> i32 {
    -1
}

/// Where a message id points in `ledger`: an offset.
async fn offset_of(ledger: &Arc<ManagedLedger>, id: MessageId) -> Result<u64, ApiError> {
    let range = ledger.range();
    if id.ledger_id < 0 {
        return Ok(range.start);
    }
    if id.ledger_id == i64::MAX {
        return Ok(range.end);
    }
    let position = polyport_ledger::Position {
        ledger_id: id.ledger_id as u64,
        entry_id: u64::try_from(id.entry_id).unwrap_or(0),
        batch_index: 0,
    };
    let base = ledger.nonblocking(move |l| l.offset_of(position)).await.map_err(|e| {
        ApiError::new(StatusCode::PRECONDITION_FAILED, format!("message id {}:{}: {e}", id.ledger_id, id.entry_id))
    })?;
    Ok((base + u64::try_from(id.batch_index.max(0)).unwrap_or(0)).min(range.end))
}

async fn authorized_partitions(
    state: &Shared,
    headers: &HeaderMap,
    (tenant, namespace, topic): (&str, &str, &str),
) -> Result<Vec<TopicName>, ApiError> {
    require_tenant_admin(state, headers, tenant).await?;
    let name = topic_name(tenant, namespace, topic)?;
    Ok(partitions_of(state, &name).await?.1)
}

/// Pulsar's clients encode a subscription's name twice (URL-encoding, as
/// in a form, then the path's own); the path extractor undoes the second.
fn decode_subscription(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

fn subscription_not_found(sub: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("Subscription {sub} not found"))
}

async fn list(
    state: Shared,
    headers: HeaderMap,
    Path((t, ns, topic)): TopicPath,
) -> Result<Json<Vec<String>>, ApiError> {
    let mut names = std::collections::BTreeSet::new();
    for partition in authorized_partitions(&state, &headers, (&t, &ns, &topic)).await? {
        names.extend(ledger_of(&state, &partition).await?.cursors().into_iter().map(|c| c.name));
    }
    Ok(Json(names.into_iter().collect()))
}

async fn create(
    state: Shared,
    headers: HeaderMap,
    Path((t, ns, topic, sub)): SubPath,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let sub = decode_subscription(&sub);
    let partitions = authorized_partitions(&state, &headers, (&t, &ns, &topic)).await?;
    let id: Option<MessageId> = if body.is_empty() { None } else { Some(json_body(&body, "message id")?) };
    let ledgers = futures::future::try_join_all(partitions.iter().map(|p| ledger_of(&state, p))).await?;
    if ledgers.iter().any(|l| l.cursor(&sub).is_some()) {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("Subscription {sub} already exists for topic")));
    }
    for ledger in &ledgers {
        let initial = match id {
            None => InitialPosition::Latest,
            Some(id) if id.ledger_id < 0 => InitialPosition::Earliest,
            Some(id) if id.ledger_id == i64::MAX => InitialPosition::Latest,
            Some(id) => InitialPosition::Offset(offset_of(ledger, id).await?),
        };
        ledger
            .open_cursor(&sub, true, initial)
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    }
    tracing::info!(topic = %topic_name(&t, &ns, &topic)?, subscription = %sub, "subscription created");
    Ok(StatusCode::NO_CONTENT)
}

async fn delete(
    state: Shared,
    headers: HeaderMap,
    Path((t, ns, topic, sub)): SubPath,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let sub = decode_subscription(&sub);
    let force = query.get("force").is_some_and(|v| v == "true");
    let partitions = authorized_partitions(&state, &headers, (&t, &ns, &topic)).await?;
    if !force {
        // Every partition is checked first, so that a refusal deletes nothing.
        for partition in &partitions {
            if connected_consumers(&state, &partition.to_string(), &sub).await > 0 {
                return Err(ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    format!("Subscription {sub} has active connected consumers (delete with force=true to close them)"),
                ));
            }
        }
    }
    let mut found = false;
    for partition in &partitions {
        let ledger = ledger_of(&state, partition).await?;
        if ledger.cursor(&sub).is_none() {
            continue;
        }
        found = true;
        let running = state.pulsar.as_ref().and_then(|p| p.running_subscription(ledger.name(), &sub));
        let deleted = |ledger: Arc<ManagedLedger>, sub: String| async move {
            ledger.delete_cursor(&sub).await.map_err(|e| DeleteRefused::Failed(e.to_string()))
        };
        let result = match running {
            Some(task) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                match task.send(SubCommand::Delete(force, tx)).await {
                    Ok(()) => rx.await.unwrap_or_else(|_| Err(DeleteRefused::Failed("the subscription closed".into()))),
                    // The task ended meanwhile: the cursor is all there is.
                    Err(_) => deleted(Arc::clone(&ledger), sub.clone()).await,
                }
            }
            None => deleted(Arc::clone(&ledger), sub.clone()).await,
        };
        match result {
            Ok(()) => {}
            Err(DeleteRefused::Busy) => {
                return Err(ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    format!("Subscription {sub} has active connected consumers (delete with force=true to close them)"),
                ))
            }
            Err(DeleteRefused::Failed(reason)) => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, reason)),
        }
    }
    if !found {
        return Err(subscription_not_found(&sub));
    }
    tracing::info!(topic = %topic_name(&t, &ns, &topic)?, subscription = %sub, force, "subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The Pulsar consumers connected to subscription `sub` of partition `ledger` now.
async fn connected_consumers(state: &Shared, ledger: &str, sub: &str) -> usize {
    let Some(task) = state.pulsar.as_ref().and_then(|p| p.running_subscription(ledger, sub)) else { return 0 };
    let (tx, rx) = tokio::sync::oneshot::channel();
    if task.send(SubCommand::Stats(tx)).await.is_err() {
        return 0;
    }
    rx.await.map_or(0, |snapshot| snapshot.consumers.len())
}

/// Moves subscription `sub` of `ledger` to `offset` (back or forth): through
/// its task when Pulsar consumers are attached (they are closed and
/// resubscribe), else on the cursor.
async fn seek(state: &Shared, ledger: &Arc<ManagedLedger>, sub: &str, offset: u64) -> Result<(), ApiError> {
    let failed = |e: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e);
    if let Some(task) = state.pulsar.as_ref().and_then(|p| p.running_subscription(ledger.name(), sub)) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if task.send(SubCommand::Seek(SeekTarget::Offset(offset), tx)).await.is_ok() {
            return rx.await.unwrap_or_else(|_| Err("the subscription closed".into())).map_err(failed);
        }
    }
    ledger.seek_cursor(sub, offset).map(|_| ()).map_err(|e| failed(e.to_string()))
}

/// Each partition's ledger that has subscription `sub` (404 if none does).
async fn with_subscription(
    state: &Shared,
    headers: &HeaderMap,
    path: (&str, &str, &str),
    sub: &str,
) -> Result<Vec<Arc<ManagedLedger>>, ApiError> {
    let mut ledgers = Vec::new();
    for partition in authorized_partitions(state, headers, path).await? {
        let ledger = ledger_of(state, &partition).await?;
        if ledger.cursor(sub).is_some() {
            ledgers.push(ledger);
        }
    }
    if ledgers.is_empty() {
        return Err(subscription_not_found(sub));
    }
    Ok(ledgers)
}

async fn reset_to_time(
    state: Shared,
    headers: HeaderMap,
    Path((t, ns, topic, sub, timestamp)): Path<(String, String, String, String, i64)>,
) -> Result<StatusCode, ApiError> {
    let sub = decode_subscription(&sub);
    for ledger in with_subscription(&state, &headers, (&t, &ns, &topic), &sub).await? {
        let offset = first_published_at(&ledger, timestamp).await?;
        seek(&state, &ledger, &sub, offset).await?;
    }
    tracing::info!(topic = %topic, subscription = %sub, timestamp, "subscription reset to a time");
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_to_id(
    state: Shared,
    headers: HeaderMap,
    Path((t, ns, topic, sub)): SubPath,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let sub = decode_subscription(&sub);
    let id: MessageId = json_body(&body, "message id")?;
    for ledger in with_subscription(&state, &headers, (&t, &ns, &topic), &sub).await? {
        let offset = offset_of(&ledger, id).await?;
        seek(&state, &ledger, &sub, offset).await?;
    }
    tracing::info!(topic = %topic, subscription = %sub, ledger_id = id.ledger_id, entry_id = id.entry_id,
        "subscription reset to a message id");
    Ok(StatusCode::NO_CONTENT)
}

/// The offset of the first entry published at or after `timestamp_ms` (the
/// end of the log if none was).
async fn first_published_at(ledger: &Arc<ManagedLedger>, timestamp_ms: i64) -> Result<u64, ApiError> {
    let found = ledger
        .nonblocking(move |l| l.find_by_time(timestamp_ms))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(found.map_or(ledger.range().end, |e| e.meta.base_offset))
}

/// Acknowledges everything below `offset` on `sub` (never moves it back).
fn acknowledge_to(ledger: &ManagedLedger, sub: &str, offset: u64) -> Result<(), ApiError> {
    ledger
        .acknowledge(sub, &Ack::Cumulative(offset))
        .map(|_| ())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn skip(
    state: Shared,
    headers: HeaderMap,
    Path((t, ns, topic, sub, count)): Path<(String, String, String, String, u64)>,
) -> Result<StatusCode, ApiError> {
    let sub = decode_subscription(&sub);
    for ledger in with_subscription(&state, &headers, (&t, &ns, &topic), &sub).await? {
        let mark = ledger.cursor(&sub).map_or(0, |c| c.mark_delete);
        acknowledge_to(&ledger, &sub, mark.saturating_add(count).min(ledger.range().end))?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn skip_all(
    state: Shared,
    headers: HeaderMap,
    Path((t, ns, topic, sub)): SubPath,
) -> Result<StatusCode, ApiError> {
    let sub = decode_subscription(&sub);
    for ledger in with_subscription(&state, &headers, (&t, &ns, &topic), &sub).await? {
        acknowledge_to(&ledger, &sub, ledger.range().end)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Acknowledges on `sub` every message published more than `seconds` ago.
async fn expire_on(ledger: &Arc<ManagedLedger>, sub: &str, seconds: i64) -> Result<(), ApiError> {
    let cutoff = now_ms() - seconds.saturating_mul(1000);
    // The first entry published after the cutoff; everything before it expired.
    let offset = first_published_at(ledger, cutoff + 1).await?;
    acknowledge_to(ledger, sub, offset)
}

async fn expire(
    state: Shared,
    headers: HeaderMap,
    Path((t, ns, topic, sub, seconds)): Path<(String, String, String, String, i64)>,
) -> Result<StatusCode, ApiError> {
    let sub = decode_subscription(&sub);
    for ledger in with_subscription(&state, &headers, (&t, &ns, &topic), &sub).await? {
        expire_on(&ledger, &sub, seconds).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn expire_all(
    state: Shared,
    headers: HeaderMap,
    Path((t, ns, topic, seconds)): Path<(String, String, String, i64)>,
) -> Result<StatusCode, ApiError> {
    for partition in authorized_partitions(&state, &headers, (&t, &ns, &topic)).await? {
        let ledger = ledger_of(&state, &partition).await?;
        for cursor in ledger.cursors().into_iter().filter(|c| c.durable) {
            expire_on(&ledger, &cursor.name, seconds).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The entry holding `offset`, as Pulsar's raw message response.
async fn message_response(state: &Shared, ledger: &Arc<ManagedLedger>, offset: u64) -> Result<Response, ApiError> {
    let batch = ledger
        .nonblocking(move |l| l.read_now(offset, ReadLimits { max_entries: 1, max_bytes: 1 }))
        .await
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, format!("Message not found: {e}")))?;
    let Some(entry) = batch.entries.into_iter().next() else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Message not found"));
    };
    let id = format!("{}:{}", entry.ledger_id, entry.entry_id);
    let (format, payload) = (entry.meta.format, entry.payload.clone());
    let converters = Arc::clone(&state.converters);
    let messages = tokio::task::spawn_blocking(move || {
        if format == crate::pulsar::FORMAT_PULSAR {
            crate::pulsar::convert::to_messages(&payload)
        } else {
            converters.decode(format, &payload)
        }
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("entry {id}: {e}")))?;
    let mut headers = HeaderMap::new();
    let mut put = |name: &str, value: String| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(n, v);
        }
    };
    put("X-Pulsar-Message-ID", id);
    put("X-Pulsar-publish-time", rfc3339_ms(entry.meta.publish_time_ms));
    let body: Vec<u8> = match messages.as_slice() {
        [one] => {
            if let Some(t) = one.event_time_ms {
                put("X-Pulsar-event-time", t.to_string());
            }
            if let Some(key) = &one.key {
                put("X-Pulsar-partition-key", String::from_utf8_lossy(key).into_owned());
            }
            if !one.properties.is_empty() {
                let map: serde_json::Map<String, serde_json::Value> = one
                    .properties
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::from(String::from_utf8_lossy(v).into_owned())))
                    .collect();
                put("X-Pulsar-PROPERTY", serde_json::Value::Object(map).to_string());
            }
            if one.value.is_none() {
                put("X-Pulsar-null-value", "true".into());
            }
            one.value.clone().map(|v| v.to_vec()).unwrap_or_default()
        }
        many => {
            // Pulsar's batch format, uncompressed: the client splits it.
            let raw = crate::pulsar::convert::from_messages(many, entry.meta.base_offset);
            let (_, payload) = crate::pulsar::frame::split_section(&bytes::Bytes::from(raw))
                .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "batch encoding"))?;
            put("X-Pulsar-num-batch-message", many.len().to_string());
            put("X-Pulsar-batch-size", payload.len().to_string());
            payload.to_vec()
        }
    };
    Ok((StatusCode::OK, headers, body).into_response())
}

/// The `n`-th entry (1-based) of the non-partitioned topic or partition
/// from `start`, walking forward.
async fn nth_entry_offset(ledger: &Arc<ManagedLedger>, start: u64, n: u64) -> Result<u64, ApiError> {
    let mut offset = start;
    for _ in 1..n.max(1) {
        let o = offset;
        let batch = ledger
            .nonblocking(move |l| l.read_now(o, ReadLimits { max_entries: 1, max_bytes: 1 }))
            .await
            .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, format!("Message not found: {e}")))?;
        let Some(entry) = batch.entries.first() else { break };
        offset = entry.meta.next_offset();
    }
    if offset >= ledger.range().end {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Message not found"));
    }
    Ok(offset)
}

async fn single_ledger(
    state: &Shared,
    headers: &HeaderMap,
    path: (&str, &str, &str),
) -> Result<Arc<ManagedLedger>, ApiError> {
    Ok(one_partition(state, headers, path, "messages", StatusCode::METHOD_NOT_ALLOWED).await?.1)
}

async fn peek(
    state: Shared,
    headers: HeaderMap,
    Path((t, ns, topic, sub, n)): Path<(String, String, String, String, u64)>,
) -> Result<Response, ApiError> {
    let sub = decode_subscription(&sub);
    let ledger = single_ledger(&state, &headers, (&t, &ns, &topic)).await?;
    let cursor = ledger.cursor(&sub).ok_or_else(|| subscription_not_found(&sub))?;
    let offset = nth_entry_offset(&ledger, cursor.mark_delete, n).await?;
    message_response(&state, &ledger, offset).await
}

async fn examine(
    state: Shared,
    headers: HeaderMap,
    Path((t, ns, topic)): TopicPath,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let ledger = single_ledger(&state, &headers, (&t, &ns, &topic)).await?;
    let n: u64 = query.get("messagePosition").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let range = ledger.range();
    if range.end == range.start {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Could not examine messages due to the topic is empty"));
    }
    let offset = match query.get("initialPosition").map(String::as_str) {
        Some("latest") => {
            // Walk back n entries from the end: the entry holding end-1 is the first.
            let mut offset = range.end - 1;
            for _ in 1..n {
                let o = offset;
                let start = ledger
                    .nonblocking(move |l| l.read_now(o, ReadLimits { max_entries: 1, max_bytes: 1 }))
                    .await
                    .ok()
                    .and_then(|b| b.entries.first().map(|e| e.meta.base_offset))
                    .unwrap_or(range.start);
                if start <= range.start {
                    return Err(ApiError::new(StatusCode::NOT_FOUND, "Message not found"));
                }
                offset = start - 1;
            }
            offset
        }
        _ => nth_entry_offset(&ledger, range.start, n).await?,
    };
    message_response(&state, &ledger, offset).await
}
