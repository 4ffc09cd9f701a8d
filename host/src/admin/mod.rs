//! Pulsar's admin REST API on `webServicePort` (what `pulsar-admin`, the
//! Java `PulsarAdmin` client and pulsarctl call), with Pulsar's paths,
//! JSON and status codes, and `/metrics`. One module per resource:
//! `security.rs` (tenants, permissions), `namespaces.rs` (namespaces and
//! their policies), `topics.rs` (topics and partitions), `stats.rs`
//! (stats, internal stats, last message id), `subscriptions.rs`
//! (subscriptions, cursor moves, peeking at messages), `cluster.rs`
//! (clusters, brokers, lookups, `/metrics`), `brokers.rs` (health and
//! readiness). docs/operations.md lists what is served and what is not.
//!
//! Every request names its role like a Pulsar client does: `Authorization:
//! Bearer <token>` (the token provider), or none when authentication is
//! off. Errors are `{"reason": ...}` with Pulsar's codes: 401 without a
//! role proven, 403 for a role not allowed, 404, 409, 412.

mod brokers;
mod cluster;
mod namespaces;
mod security;
mod stats;
mod subscriptions;
mod topics;

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Json, Router,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    security::{authz::Authorizer, Authenticator},
    topics::{TopicError, Topics},
};

/// What the handlers share.
pub struct AdminState {
    /// Topics and the metadata store.
    pub topics: Arc<Topics>,
    /// Bearer tokens.
    pub authenticator: Arc<Authenticator>,
    /// Who may do what.
    pub authorizer: Arc<Authorizer>,
    /// `clusterName`: the health check's heartbeat namespace is `pulsar/<cluster>`.
    pub cluster: String,
    /// This broker in its heartbeat topic's name (its `webServicePort`).
    pub instance: String,
    /// `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The Pulsar protocol, when on: its subscriptions and producers.
    pub pulsar: Option<Arc<crate::pulsar::PulsarService>>,
    /// Converters of other protocols' entries (peeking at messages).
    pub converters: Arc<crate::convert::Converters>,
    /// Where clients reach this broker.
    pub urls: Urls,
}

/// This broker's addresses, as cluster data and lookups give them.
#[derive(Debug, Clone, Default)]
pub struct Urls {
    /// `http://<advertisedAddress>:<webServicePort>`.
    pub web: String,
    /// `https://…:<webServicePortTls>`, if set.
    pub web_tls: Option<String>,
    /// `pulsar://…`, if the Pulsar protocol is on.
    pub broker: Option<String>,
    /// `pulsar+ssl://…`, if set.
    pub broker_tls: Option<String>,
}

/// An error as Pulsar's admin API answers it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self { status, reason: reason.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "reason": self.reason }))).into_response()
    }
}

impl From<TopicError> for ApiError {
    fn from(e: TopicError) -> Self {
        let status = match &e {
            TopicError::NotFound(_) | TopicError::NamespaceNotFound(_) => StatusCode::NOT_FOUND,
            TopicError::AlreadyExists(_) | TopicError::NotEmpty(_) => StatusCode::CONFLICT,
            TopicError::NotServed(_) => StatusCode::SERVICE_UNAVAILABLE,
            TopicError::InvalidName(_) | TopicError::Invalid(_) => StatusCode::PRECONDITION_FAILED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

/// The role a request proves: `None` when authentication is off.
pub(crate) fn role_of(state: &AdminState, request: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    if !state.authenticator.enabled() {
        return Ok(None);
    }
    let header = request.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(token) = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")) else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "authentication required: Authorization: Bearer <token>"));
    };
    state
        .authenticator
        .authenticate("token", token.trim().as_bytes())
        .map(Some)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
}

/// 403, naming what `role` may not do.
pub(crate) fn forbidden(role: Option<&str>, what: &str) -> ApiError {
    let who = role.unwrap_or("anonymous");
    ApiError::new(StatusCode::FORBIDDEN, format!("role {who} is not authorized to {what}"))
}

/// Requires a super-user (when authorization is on).
pub(crate) async fn require_super_user(
    state: &Shared,
    headers: &axum::http::HeaderMap,
    what: &str,
) -> Result<(), ApiError> {
    let role = role_of(state, headers)?;
    if !state.authorizer.enabled() || state.authorizer.is_super_user(role.as_deref()) {
        Ok(())
    } else {
        Err(forbidden(role.as_deref(), what))
    }
}

/// Requires an admin of `tenant` (when authorization is on).
pub(crate) async fn require_tenant_admin(
    state: &Shared,
    headers: &axum::http::HeaderMap,
    tenant: &str,
) -> Result<(), ApiError> {
    let role = role_of(state, headers)?;
    if state.authorizer.is_tenant_admin(role.as_deref(), tenant).await? {
        Ok(())
    } else {
        Err(forbidden(role.as_deref(), &format!("administer tenant {tenant}")))
    }
}

/// `persistent://tenant/namespace/topic`, or 412 naming what is wrong.
pub(crate) fn topic_name(tenant: &str, namespace: &str, topic: &str) -> Result<crate::topics::TopicName, ApiError> {
    crate::topics::TopicName::parse(&format!("persistent://{tenant}/{namespace}/{topic}"))
        .map_err(|e| ApiError::new(StatusCode::PRECONDITION_FAILED, e.to_string()))
}

/// A JSON body Pulsar's clients send whatever their content type says
/// (a partition count, a message id): parsed here, 400 naming the problem.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("{what}: {e}")))
}

/// One access-log line per request: method, path, status, duration.
async fn access_log(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(target: "polyport_host::admin::access", %method, %path, status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64, "admin request");
    response
}

/// The routes.
pub fn router(state: Arc<AdminState>) -> Router {
    security::routes()
        .merge(brokers::routes())
        .merge(cluster::routes())
        .merge(namespaces::routes())
        .merge(topics::routes())
        .merge(stats::routes())
        .merge(subscriptions::routes())
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

/// Binds `address`.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(address).await.map_err(|e| format!("webServicePort: cannot bind {address}: {e}"))
}

/// Serves until `shutdown`.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, shutdown: CancellationToken) {
    let app = router(state);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::warn!(error = %e, "admin HTTP server stopped");
    }
}

/// Serves `webServicePortTls`: each connection's TLS handshake on its own
/// task, then HTTP/1.1 over the decrypted stream, until `shutdown`.
pub async fn serve_tls(
    listener: TcpListener,
    tls: crate::security::tls::Tls,
    state: Arc<AdminState>,
    shutdown: CancellationToken,
) {
    let app = router(state);
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "admin TLS accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tls, app, shutdown) = (tls.clone(), app.clone(), shutdown.clone());
        tokio::spawn(async move {
            let stream = match tls.accept(stream).await {
                Ok(accepted) => accepted.stream,
                Err(reason) => {
                    tracing::info!(%peer, "admin connection closed: {reason}");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "admin connection ended");
                    }
                }
                () = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
            }
        });
    }
}

type Shared = State<Arc<AdminState>>;
