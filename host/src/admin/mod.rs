//! Pulsar's admin REST API on `webServicePort` (what `pulsar-admin`, the
//! Java `PulsarAdmin` client and pulsarctl call), with Pulsar's paths,
//! JSON and status codes. Served so far: what security needs, tenants and
//! permissions (`security.rs`), health and readiness (`brokers.rs`); the rest of the API (namespaces' policies,
//! topics, subscriptions, stats, metrics) is issue 17's.
//!
//! Every request names its role like a Pulsar client does: `Authorization:
//! Bearer <token>` (the token provider), or none when authentication is
//! off. Errors are `{"reason": ...}` with Pulsar's codes: 401 without a
//! role proven, 403 for a role not allowed, 404, 409, 412.

mod brokers;
mod security;

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
}

/// An error as Pulsar's admin API answers it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
}

impl ApiError {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
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
            TopicError::AlreadyExists(_) => StatusCode::CONFLICT,
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
    security::routes().merge(brokers::routes()).layer(middleware::from_fn(access_log)).with_state(state)
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
