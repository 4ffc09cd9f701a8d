//! Tenants and permissions, as Pulsar's admin v2 serves them:
//!
//! - `GET /admin/v2/tenants`, `GET|PUT|POST /admin/v2/tenants/{tenant}`
//!   (`TenantInfo`: `adminRoles`, `allowedClusters`; super-users only when
//!   authorization is on);
//! - `GET /admin/v2/namespaces/{tenant}`, `PUT /admin/v2/namespaces/{tenant}/{namespace}`
//!   (the tenant's admins);
//! - `GET /admin/v2/namespaces/{tenant}/{namespace}/permissions` and
//!   `POST|DELETE …/permissions/{role}` with a JSON array of actions
//!   (`["produce","consume"]`);
//! - `GET /admin/v2/persistent/{tenant}/{namespace}/{topic}/permissions`
//!   and `POST|DELETE …/permissions/{role}`, the same for one topic.
//!
//! Gaps: deleting tenants and namespaces, wildcard roles, subscription
//! permissions.

use std::collections::{BTreeMap, BTreeSet};

use axum::{
    extract::Path,
    http::{HeaderMap, StatusCode},
    routing::get,
    Json, Router,
};

use super::{role_of, ApiError, Shared};
use crate::topics::{tenants::TenantInfo, TopicName};

pub(super) fn routes() -> Router<std::sync::Arc<super::AdminState>> {
    Router::new()
        .route("/admin/v2/tenants", get(list_tenants))
        .route("/admin/v2/tenants/{tenant}", get(get_tenant).put(create_tenant).post(update_tenant))
        .route("/admin/v2/namespaces/{tenant}", get(list_namespaces))
        .route("/admin/v2/namespaces/{tenant}/{namespace}", axum::routing::put(create_namespace))
        .route("/admin/v2/namespaces/{tenant}/{namespace}/permissions", get(namespace_permissions))
        .route(
            "/admin/v2/namespaces/{tenant}/{namespace}/permissions/{role}",
            axum::routing::post(grant_namespace).delete(revoke_namespace),
        )
        .route("/admin/v2/persistent/{tenant}/{namespace}/{topic}/permissions", get(topic_permissions))
        .route(
            "/admin/v2/persistent/{tenant}/{namespace}/{topic}/permissions/{role}",
            axum::routing::post(grant_topic).delete(revoke_topic),
        )
}

fn forbidden(role: Option<&str>, what: &str) -> ApiError {
    let who = role.unwrap_or("anonymous");
    ApiError::new(StatusCode::FORBIDDEN, format!("role {who} is not authorized to {what}"))
}

async fn require_super_user(state: &Shared, headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
    let role = role_of(state, headers)?;
    if !state.authorizer.enabled() || state.authorizer.is_super_user(role.as_deref()) {
        Ok(())
    } else {
        Err(forbidden(role.as_deref(), what))
    }
}

async fn require_tenant_admin(state: &Shared, headers: &HeaderMap, tenant: &str) -> Result<(), ApiError> {
    let role = role_of(state, headers)?;
    if state.authorizer.is_tenant_admin(role.as_deref(), tenant).await? {
        Ok(())
    } else {
        Err(forbidden(role.as_deref(), &format!("administer tenant {tenant}")))
    }
}

async fn list_tenants(state: Shared, headers: HeaderMap) -> Result<Json<Vec<String>>, ApiError> {
    require_super_user(&state, &headers, "list tenants").await?;
    Ok(Json(state.topics.tenants().await?))
}

async fn get_tenant(
    state: Shared,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Result<Json<TenantInfo>, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    let info = state.topics.tenant(&tenant).await?;
    info.map(Json).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("tenant {tenant} does not exist")))
}

async fn create_tenant(
    state: Shared,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Json(info): Json<TenantInfo>,
) -> Result<StatusCode, ApiError> {
    require_super_user(&state, &headers, "create tenants").await?;
    state.topics.put_tenant(&tenant, info, true).await?;
    state.authorizer.invalidate(&tenant);
    Ok(StatusCode::NO_CONTENT)
}

async fn update_tenant(
    state: Shared,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Json(info): Json<TenantInfo>,
) -> Result<StatusCode, ApiError> {
    require_super_user(&state, &headers, "update tenants").await?;
    state.topics.put_tenant(&tenant, info, false).await?;
    state.authorizer.invalidate(&tenant);
    Ok(StatusCode::NO_CONTENT)
}

async fn list_namespaces(
    state: Shared,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<String>>, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    if state.topics.tenant(&tenant).await?.is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("tenant {tenant} does not exist")));
    }
    Ok(Json(state.topics.namespaces(&tenant).await?))
}

async fn create_namespace(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    if state.topics.tenant(&tenant).await?.is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("tenant {tenant} does not exist")));
    }
    state.topics.create_namespace(&format!("{tenant}/{namespace}")).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn namespace_permissions(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<Json<BTreeMap<String, BTreeSet<String>>>, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    Ok(Json(state.topics.permissions(&format!("{tenant}/{namespace}")).await?.namespace_auth))
}

async fn grant_namespace(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, role)): Path<(String, String, String)>,
    Json(actions): Json<BTreeSet<String>>,
) -> Result<StatusCode, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    state.topics.grant(&format!("{tenant}/{namespace}"), None, &role, actions).await?;
    state.authorizer.invalidate(&tenant);
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke_namespace(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, role)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    state.topics.grant(&format!("{tenant}/{namespace}"), None, &role, BTreeSet::new()).await?;
    state.authorizer.invalidate(&tenant);
    Ok(StatusCode::NO_CONTENT)
}

fn topic_name(tenant: &str, namespace: &str, topic: &str) -> Result<TopicName, ApiError> {
    TopicName::parse(&format!("persistent://{tenant}/{namespace}/{topic}"))
        .map_err(|e| ApiError::new(StatusCode::PRECONDITION_FAILED, e.to_string()))
}

/// The topic's permissions: its namespace's, with the topic's own added
/// (what Pulsar answers).
async fn topic_permissions(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
) -> Result<Json<BTreeMap<String, BTreeSet<String>>>, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    let name = topic_name(&tenant, &namespace, &topic)?;
    let auth = state.topics.permissions(&name.namespace_path()).await?;
    let mut merged = auth.namespace_auth;
    for (role, actions) in auth.destination_auth.get(&name.to_string()).cloned().unwrap_or_default() {
        merged.entry(role).or_default().extend(actions);
    }
    Ok(Json(merged))
}

async fn grant_topic(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic, role)): Path<(String, String, String, String)>,
    Json(actions): Json<BTreeSet<String>>,
) -> Result<StatusCode, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    let name = topic_name(&tenant, &namespace, &topic)?;
    state.topics.grant(&name.namespace_path(), Some(name.to_string()), &role, actions).await?;
    state.authorizer.invalidate(&tenant);
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke_topic(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic, role)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    let name = topic_name(&tenant, &namespace, &topic)?;
    state.topics.grant(&name.namespace_path(), Some(name.to_string()), &role, BTreeSet::new()).await?;
    state.authorizer.invalidate(&tenant);
    Ok(StatusCode::NO_CONTENT)
}
