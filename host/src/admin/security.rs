//! Tenants and permissions, as Pulsar's admin v2 serves them:
//!
//! - `GET /admin/v2/tenants`, `GET|PUT|POST|DELETE /admin/v2/tenants/{tenant}`
//!   (`TenantInfo`: `adminRoles`, `allowedClusters`; super-users only when
//!   authorization is on);
//! - `GET /admin/v2/namespaces/{tenant}`, `PUT /admin/v2/namespaces/{tenant}/{namespace}`
//!   (the tenant's admins; its policies and deletion are `namespaces.rs`');
//! - `GET /admin/v2/namespaces/{tenant}/{namespace}/permissions` and
//!   `POST|DELETE …/permissions/{role}` with a JSON array of actions
//!   (`["produce","consume"]`);
//! - `GET /admin/v2/persistent/{tenant}/{namespace}/{topic}/permissions`
//!   and `POST|DELETE …/permissions/{role}`, the same for one topic.
//!
//! Gaps: wildcard roles, subscription permissions.

use std::collections::{BTreeMap, BTreeSet};

use axum::{
    extract::Path,
    http::{HeaderMap, StatusCode},
    routing::get,
    Json, Router,
};

use super::{require_super_user, require_tenant_admin, topic_name, ApiError, Shared};
use crate::topics::tenants::TenantInfo;

pub(super) fn routes() -> Router<std::sync::Arc<super::AdminState>> {
    Router::new()
        .route("/admin/v2/tenants", get(list_tenants))
        .route(
            "/admin/v2/tenants/{tenant}",
            get(get_tenant).put(create_tenant).post(update_tenant).delete(delete_tenant),
        )
        .route("/admin/v2/namespaces/{tenant}", get(list_namespaces))
        .route(
            "/admin/v2/namespaces/{tenant}/{namespace}",
            get(super::namespaces::policies)
                .put(super::namespaces::create_namespace)
                .delete(super::namespaces::delete_namespace),
        )
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

async fn delete_tenant(state: Shared, headers: HeaderMap, Path(tenant): Path<String>) -> Result<StatusCode, ApiError> {
    require_super_user(&state, &headers, "delete tenants").await?;
    state.topics.delete_tenant(&tenant).await?;
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
