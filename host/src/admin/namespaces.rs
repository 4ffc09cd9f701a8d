//! Namespaces and the policies the broker applies, as Pulsar's admin v2
//! serves them (the tenant's admins):
//!
//! - `PUT /admin/v2/namespaces/{tenant}/{ns}` (optionally with Pulsar's
//!   `Policies`: its retention, TTL and auto-creation are kept),
//!   `GET` (the policies), `DELETE` (409 while it holds topics, as Pulsar);
//! - `GET|POST|DELETE …/retention` (`RetentionPolicies`:
//!   `retentionTimeInMinutes`, `retentionSizeInMB`);
//! - `GET|POST|DELETE …/messageTTL` (seconds);
//! - `GET|POST|DELETE …/autoTopicCreation` (`AutoTopicCreationOverride`).
//!
//! Policies live in the namespace's record in the metadata store; the
//! retention task reads them at each pass and auto-creation at each
//! creation, so a change applies at once on every broker. Topic-level
//! policies, backlog quotas and the other Pulsar policies are not served.

use axum::{
    body::Bytes,
    extract::Path,
    http::{HeaderMap, StatusCode},
    routing::get,
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{json_body, require_tenant_admin, ApiError, Shared};
use crate::topics::{AutoTopicCreation, Policies};

pub(super) fn routes() -> Router<std::sync::Arc<super::AdminState>> {
    let base = "/admin/v2/namespaces/{tenant}/{namespace}";
    Router::new()
        .route(&format!("{base}/retention"), get(get_retention).post(set_retention).delete(remove_retention))
        .route(&format!("{base}/messageTTL"), get(get_ttl).post(set_ttl).delete(remove_ttl))
        .route(
            &format!("{base}/autoTopicCreation"),
            get(get_auto_creation).post(set_auto_creation).delete(remove_auto_creation),
        )
}

/// Pulsar's `RetentionPolicies`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Retention {
    retention_time_in_minutes: i64,
    #[serde(rename = "retentionSizeInMB")]
    retention_size_in_mb: i64,
}

/// What Pulsar's `Policies` carries that this broker applies.
#[derive(Debug, Default, Deserialize)]
struct PulsarPolicies {
    #[serde(default)]
    retention_policies: Option<Retention>,
    #[serde(default)]
    message_ttl_in_seconds: Option<i64>,
    #[serde(default, rename = "autoTopicCreationOverride")]
    auto_topic_creation_override: Option<AutoTopicCreation>,
}

fn path(tenant: &str, namespace: &str) -> String {
    format!("{tenant}/{namespace}")
}

/// The namespace's policies as Pulsar's `Policies` JSON.
pub(super) async fn policies(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    let p = existing(&state, &tenant, &namespace).await?;
    let mut out = json!({
        "auth_policies": p.auth_policies,
        "replication_clusters": [state.cluster],
        "bundles": { "boundaries": ["0x00000000", "0xffffffff"], "numBundles": 1 },
        "deleted": false,
    });
    if let Some(r) = retention_of(&p) {
        out["retention_policies"] = json!(r);
    }
    if let Some(ttl) = p.message_ttl_in_seconds {
        out["message_ttl_in_seconds"] = json!(ttl);
    }
    if let Some(auto) = &p.auto_topic_creation_override {
        out["autoTopicCreationOverride"] = json!(auto);
    }
    Ok(Json(out))
}

async fn existing(state: &Shared, tenant: &str, namespace: &str) -> Result<Policies, ApiError> {
    let ns = path(tenant, namespace);
    if !state.topics.namespaces(tenant).await?.contains(&ns) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("Namespace {ns} does not exist")));
    }
    Ok(state.topics.namespace_policies(&ns).await?)
}

fn retention_of(p: &Policies) -> Option<Retention> {
    match (p.retention_time_in_minutes, p.retention_size_in_mb) {
        (None, None) => None,
        (time, size) => {
            Some(Retention { retention_time_in_minutes: time.unwrap_or(0), retention_size_in_mb: size.unwrap_or(0) })
        }
    }
}

/// Creates the namespace, with the policies of a `Policies` body.
pub(super) async fn create_namespace(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    if state.topics.tenant(&tenant).await?.is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("Tenant {tenant} does not exist")));
    }
    // Pulsar's clients send `Policies`, or a set of clusters, or nothing.
    let initial: PulsarPolicies = match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Object(_)) => json_body(&serde_json::to_vec(&v).unwrap_or_default(), "policies")?,
        _ => PulsarPolicies::default(),
    };
    let ns = path(&tenant, &namespace);
    state.topics.create_namespace(&ns).await.map_err(|e| match e {
        crate::topics::TopicError::AlreadyExists(_) => {
            ApiError::new(StatusCode::CONFLICT, format!("Namespace {ns} already exists"))
        }
        other => other.into(),
    })?;
    if initial.retention_policies.is_some()
        || initial.message_ttl_in_seconds.is_some()
        || initial.auto_topic_creation_override.is_some()
    {
        state
            .topics
            .update_namespace_policies(&ns, move |p| {
                if let Some(r) = initial.retention_policies {
                    p.retention_time_in_minutes = Some(r.retention_time_in_minutes);
                    p.retention_size_in_mb = Some(r.retention_size_in_mb);
                }
                p.message_ttl_in_seconds = initial.message_ttl_in_seconds.or(p.message_ttl_in_seconds);
                if let Some(auto) = &initial.auto_topic_creation_override {
                    p.auto_topic_creation_override = Some(auto.clone());
                }
                Ok(())
            })
            .await?;
    }
    tracing::info!(namespace = %ns, "namespace created");
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the namespace (409 while it holds topics).
pub(super) async fn delete_namespace(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    existing(&state, &tenant, &namespace).await?;
    state.topics.delete_namespace(&path(&tenant, &namespace)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update(
    state: &Shared,
    headers: &HeaderMap,
    tenant: &str,
    namespace: &str,
    change: impl Fn(&mut Policies) + Send + 'static,
) -> Result<StatusCode, ApiError> {
    require_tenant_admin(state, headers, tenant).await?;
    existing(state, tenant, namespace).await?;
    let ns = path(tenant, namespace);
    let written = state
        .topics
        .update_namespace_policies(&ns, move |p| {
            change(p);
            Ok(())
        })
        .await?;
    tracing::info!(namespace = %ns, retention_minutes = ?written.retention_time_in_minutes,
        retention_mb = ?written.retention_size_in_mb, ttl_seconds = ?written.message_ttl_in_seconds,
        auto_creation = ?written.auto_topic_creation_override, "namespace policies changed");
    Ok(StatusCode::NO_CONTENT)
}

/// One policy of the namespace, as `field` shows it (`null`: not set).
async fn read(
    state: &Shared,
    headers: &HeaderMap,
    tenant: &str,
    namespace: &str,
    field: fn(Policies) -> Value,
) -> Result<Json<Value>, ApiError> {
    require_tenant_admin(state, headers, tenant).await?;
    Ok(Json(field(existing(state, tenant, namespace).await?)))
}

async fn get_retention(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    read(&state, &headers, &tenant, &namespace, |p| retention_of(&p).map_or(Value::Null, |r| json!(r))).await
}

async fn set_retention(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let r: Retention = json_body(&body, "RetentionPolicies")?;
    if r.retention_time_in_minutes < -1 || r.retention_size_in_mb < -1 {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "retention values must be -1 (infinite), 0 or more",
        ));
    }
    update(&state, &headers, &tenant, &namespace, move |p| {
        p.retention_time_in_minutes = Some(r.retention_time_in_minutes);
        p.retention_size_in_mb = Some(r.retention_size_in_mb);
    })
    .await
}

async fn remove_retention(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    update(&state, &headers, &tenant, &namespace, |p| {
        p.retention_time_in_minutes = None;
        p.retention_size_in_mb = None;
    })
    .await
}

async fn get_ttl(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    read(&state, &headers, &tenant, &namespace, |p| p.message_ttl_in_seconds.map_or(Value::Null, |t| json!(t))).await
}

async fn set_ttl(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let ttl: i64 = json_body(&body, "message TTL (seconds)")?;
    if ttl < 0 {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "Invalid value for message TTL: it must be 0 or more",
        ));
    }
    update(&state, &headers, &tenant, &namespace, move |p| p.message_ttl_in_seconds = Some(ttl)).await
}

async fn remove_ttl(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    update(&state, &headers, &tenant, &namespace, |p| p.message_ttl_in_seconds = None).await
}

async fn get_auto_creation(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    read(&state, &headers, &tenant, &namespace, |p| p.auto_topic_creation_override.map_or(Value::Null, |a| json!(a)))
        .await
}

async fn set_auto_creation(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let rules: AutoTopicCreation = json_body(&body, "AutoTopicCreationOverride")?;
    match rules.topic_type.as_str() {
        "non-partitioned" => {}
        "partitioned" if rules.default_num_partitions.is_some_and(|n| n > 0) => {}
        "partitioned" => {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "[defaultNumPartitions] cannot be less than 1 for partition type",
            ))
        }
        other => {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                format!("Unknown topic type {other:?}: expected partitioned or non-partitioned"),
            ))
        }
    }
    update(&state, &headers, &tenant, &namespace, move |p| p.auto_topic_creation_override = Some(rules.clone())).await
}

async fn remove_auto_creation(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    update(&state, &headers, &tenant, &namespace, |p| p.auto_topic_creation_override = None).await
}
