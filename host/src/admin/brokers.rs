//! `GET /admin/v2/brokers/ready` and `GET /admin/v2/brokers/health`, as
//! Pulsar serves them (probes for orchestrators and load balancers):
//!
//! - ready: the broker has started and serves (`ok`); cheap, no I/O;
//! - health: storage end to end: an entry appended to this broker's
//!   heartbeat topic (`persistent://pulsar/<cluster>/healthcheck-<port>`,
//!   Pulsar's heartbeat namespace, durable, fsynced) and read back from the
//!   ledger; `ok`, or 503 with the reason (a full disk, a failed ledger, a
//!   metadata store that does not answer). With authorization on, only
//!   super-users may ask, as in Pulsar.
//!
//! Gap: Pulsar's health check also runs a subscription on the topic
//! (`topicVersion=V2`); this one reads the ledger directly.

use std::time::Duration;

use axum::{extract::State, http::HeaderMap, http::StatusCode, routing::get, Router};

use super::{role_of, ApiError, Shared};
use crate::topics::TopicName;

/// How long a health check may take before it answers 503.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn routes() -> Router<std::sync::Arc<super::AdminState>> {
    Router::new().route("/admin/v2/brokers/ready", get(ready)).route("/admin/v2/brokers/health", get(health))
}

async fn ready() -> &'static str {
    "ok"
}

async fn health(State(state): Shared, headers: HeaderMap) -> Result<&'static str, ApiError> {
    let role = role_of(&state, &headers)?;
    if state.authorizer.enabled() && !state.authorizer.is_super_user(role.as_deref()) {
        let who = role.as_deref().unwrap_or("anonymous");
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("role {who} is not authorized to check health")));
    }
    let unhealthy = |reason: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason);
    match tokio::time::timeout(HEALTH_TIMEOUT, check(&state)).await {
        Ok(Ok(())) => Ok("ok"),
        Ok(Err(reason)) => Err(unhealthy(reason)),
        Err(_) => Err(unhealthy(format!("storage did not answer within {} s", HEALTH_TIMEOUT.as_secs()))),
    }
}

/// Appends a heartbeat and reads it back.
async fn check(state: &super::AdminState) -> Result<(), String> {
    let namespace = format!("pulsar/{}", state.cluster);
    state.topics.ensure_namespace(&namespace).await.map_err(|e| format!("metadata store: {e}"))?;
    let name = TopicName::parse(&format!("persistent://{namespace}/healthcheck-{}", state.instance))
        .map_err(|e| e.to_string())?;
    let ledger = state.topics.ledger(&name, true).await.map_err(|e| format!("heartbeat topic: {e}"))?;
    let stamp = crate::topics::now_ms().to_string();
    let entry = polyport_ledger::NewEntry {
        payload: bytes::Bytes::from(stamp.clone()),
        count: 1,
        format: 0,
        flags: 0,
        max_timestamp_ms: -1,
    };
    let appended = ledger.append(vec![entry]).await.map_err(|e| format!("append: {e}"))?;
    let offset = appended.first().map(|a| a.base_offset).ok_or("append stored nothing")?;
    let limits = polyport_ledger::ReadLimits { max_entries: 1, max_bytes: 1024 };
    let read = ledger.read(offset, limits, None).await.map_err(|e| format!("read: {e}"))?;
    match read.entries.first() {
        Some(entry) if entry.payload == stamp.as_bytes() => Ok(()),
        _ => Err(format!("read back something else than the heartbeat at offset {offset}")),
    }
}
