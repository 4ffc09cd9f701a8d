//! The cluster as Pulsar's admin v2 shows it, lookups, and `/metrics`:
//!
//! - `GET /admin/v2/clusters` (this broker's cluster) and
//!   `GET /admin/v2/clusters/{cluster}` (`ClusterData`: its URLs);
//! - `GET /admin/v2/brokers/{cluster}`: the live brokers (`host:port` of
//!   their web service), this one alone without a shared metadata store;
//! - `GET /lookup/v2/topic/persistent/{tenant}/{ns}/{topic}`: where the
//!   topic is served (`brokerUrl`, `httpUrl`, and their TLS forms): this
//!   broker, or in a cluster the partition's owner;
//! - `GET /metrics`: Prometheus' text format (open, as Pulsar's is by
//!   default; put it behind the network's rules).

use axum::{
    extract::Path,
    http::{header, HeaderMap, StatusCode},
    response::IntoResponse,
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};

use super::{require_super_user, role_of, topic_name, ApiError, Shared};
use crate::{cluster::Route, security::authz::Action};

pub(super) fn routes() -> Router<std::sync::Arc<super::AdminState>> {
    Router::new()
        .route("/admin/v2/clusters", get(clusters))
        .route("/admin/v2/clusters/{cluster}", get(cluster))
        .route("/admin/v2/brokers/{cluster}", get(brokers))
        .route("/lookup/v2/topic/persistent/{tenant}/{namespace}/{topic}", get(lookup))
        .route("/metrics", get(metrics))
        .route("/metrics/", get(metrics))
}

async fn clusters(state: Shared) -> Json<Vec<String>> {
    Json(vec![state.cluster.clone()])
}

fn unknown_cluster(cluster: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("Cluster {cluster} does not exist"))
}

async fn cluster(state: Shared, Path(cluster): Path<String>) -> Result<Json<Value>, ApiError> {
    if cluster != state.cluster {
        return Err(unknown_cluster(&cluster));
    }
    let u = &state.urls;
    Ok(Json(json!({
        "serviceUrl": u.web,
        "serviceUrlTls": u.web_tls,
        "brokerServiceUrl": u.broker,
        "brokerServiceUrlTls": u.broker_tls,
    })))
}

async fn brokers(
    state: Shared,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> Result<Json<Vec<String>>, ApiError> {
    require_super_user(&state, &headers, "list brokers").await?;
    if cluster != state.cluster {
        return Err(unknown_cluster(&cluster));
    }
    let ids = match state.topics.cluster() {
        Some(c) => c.brokers().into_iter().map(|b| b.id).collect(),
        None => vec![state.urls.web.trim_start_matches("http://").to_owned()],
    };
    Ok(Json(ids))
}

async fn lookup(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let role = role_of(&state, &headers)?;
    let name = topic_name(&tenant, &namespace, &topic)?;
    if !state.authorizer.allows(role.as_deref(), Action::Lookup, &name).await? {
        let who = role.unwrap_or_else(|| "anonymous".into());
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("role {who} is not authorized to look up {name}")));
    }
    // Pulsar's lookup of a topic that does not exist creates it when
    // auto-creation allows (its clients look up before producing).
    state.topics.resolve(&name.base(), true).await.map_err(|e| match e {
        crate::topics::TopicError::NotFound(_) => super::topics::topic_not_found(&name),
        other => other.into(),
    })?;
    let here = || {
        let u = &state.urls;
        json!({ "brokerUrl": u.broker, "brokerUrlTls": u.broker_tls, "httpUrl": u.web, "httpUrlTls": u.web_tls, "nativeUrl": u.broker })
    };
    let Some(cluster) = state.topics.cluster() else { return Ok(Json(here())) };
    match cluster.route(&name).await.map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))? {
        Route::Local => Ok(Json(here())),
        Route::Remote(owner) => {
            let data = owner.data.unwrap_or_default();
            Ok(Json(json!({
                "brokerUrl": data.pulsar_service_url,
                "brokerUrlTls": data.pulsar_service_url_tls,
                "httpUrl": data.web_service_url,
                "nativeUrl": data.pulsar_service_url,
            })))
        }
    }
}

async fn metrics(state: Shared) -> impl IntoResponse {
    let text = state.metrics.render(&state.topics).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}
