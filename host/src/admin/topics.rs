//! Topics and partitions, as Pulsar's admin v2 serves them (persistent
//! topics; the tenant's admins):
//!
//! - `GET /admin/v2/persistent/{tenant}/{ns}`: non-partitioned topics and
//!   every partition; `GET …/partitioned`: partitioned topics;
//! - `PUT|DELETE /admin/v2/persistent/{tenant}/{ns}/{topic}`: a
//!   non-partitioned topic (409 if it exists; deletion refused with 412
//!   while producers or consumers are connected, unless `force=true`);
//! - `GET|PUT|POST|DELETE …/{topic}/partitions`: a partitioned topic's
//!   metadata, creation, growth and deletion (the body is the count).
//!
//! Gaps: `non-persistent://` (never served: its listings are empty), topic-level policies,
//! compaction, offload triggers, `truncate`, `unload` (there is no bundle
//! to unload: a standalone broker owns every topic).

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{Path, Query},
    http::{HeaderMap, StatusCode},
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};

use super::{json_body, require_tenant_admin, topic_name, ApiError, Shared};
use crate::topics::{TopicError, TopicName};

pub(super) fn routes() -> Router<std::sync::Arc<super::AdminState>> {
    Router::new()
        .route("/admin/v2/persistent/{tenant}/{namespace}", get(list))
        .route("/admin/v2/persistent/{tenant}/{namespace}/partitioned", get(list_partitioned))
        // Pulsar's clients list both domains; this broker has no non-persistent topics.
        .route("/admin/v2/non-persistent/{tenant}/{namespace}", get(no_topics))
        .route("/admin/v2/non-persistent/{tenant}/{namespace}/partitioned", get(no_topics))
        .route(
            "/admin/v2/persistent/{tenant}/{namespace}/{topic}",
            axum::routing::put(create_non_partitioned).delete(delete_non_partitioned),
        )
        .route(
            "/admin/v2/persistent/{tenant}/{namespace}/{topic}/partitions",
            get(metadata).put(create_partitioned).post(update_partitions).delete(delete_partitioned),
        )
}

/// 404 as Pulsar words it.
pub(super) fn topic_not_found(name: &TopicName) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("Topic {name} not found"))
}

/// The partitions (or the topic itself, if non-partitioned) that `name`
/// stands for; a partition's name stands for itself. 404 if it does not exist.
pub(super) async fn partitions_of(state: &Shared, name: &TopicName) -> Result<(u32, Vec<TopicName>), ApiError> {
    if let Some((_, n)) = name.partition() {
        if let Some(record) = state.topics.record(&name.base()).await? {
            if n < record.partitions {
                return Ok((0, vec![name.clone()]));
            }
        }
    }
    let record = state.topics.record(name).await?.ok_or_else(|| topic_not_found(name))?;
    if record.partitions == 0 {
        Ok((0, vec![name.clone()]))
    } else {
        Ok((record.partitions, (0..record.partitions).map(|i| name.partition_name(i)).collect()))
    }
}

async fn namespace_topics(
    state: &Shared,
    headers: &HeaderMap,
    tenant: &str,
    namespace: &str,
) -> Result<Vec<(TopicName, u32)>, ApiError> {
    require_tenant_admin(state, headers, tenant).await?;
    Ok(state.topics.list(&format!("{tenant}/{namespace}")).await?)
}

async fn list(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<Json<Vec<String>>, ApiError> {
    let mut out = Vec::new();
    for (name, partitions) in namespace_topics(&state, &headers, &tenant, &namespace).await? {
        if partitions == 0 {
            out.push(name.to_string());
        } else {
            out.extend((0..partitions).map(|i| name.partition_name(i).to_string()));
        }
    }
    Ok(Json(out))
}

async fn no_topics(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<Json<Vec<String>>, ApiError> {
    namespace_topics(&state, &headers, &tenant, &namespace).await?;
    Ok(Json(Vec::new()))
}

async fn list_partitioned(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<Json<Vec<String>>, ApiError> {
    let topics = namespace_topics(&state, &headers, &tenant, &namespace).await?;
    Ok(Json(topics.into_iter().filter(|(_, p)| *p > 0).map(|(n, _)| n.to_string()).collect()))
}

async fn create(state: &Shared, name: &TopicName, partitions: u32) -> Result<StatusCode, ApiError> {
    // The create is a compare-and-set: an existing topic is its AlreadyExists (409).
    state.topics.create(name, partitions).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_non_partitioned(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    let name = topic_name(&tenant, &namespace, &topic)?;
    if name.partition().is_some() {
        if let Some(record) = state.topics.record(&name.base()).await? {
            if record.partitions > 0 {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("{name} is a partition of the partitioned topic {}", name.base()),
                ));
            }
        }
    }
    create(&state, &name, 0).await
}

async fn create_partitioned(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    let name = topic_name(&tenant, &namespace, &topic)?;
    let partitions: u32 = json_body(&body, "the number of partitions")?;
    if partitions == 0 {
        return Err(ApiError::new(StatusCode::NOT_ACCEPTABLE, "Number of partitions should be more than 0"));
    }
    create(&state, &name, partitions).await
}

async fn update_partitions(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    let name = topic_name(&tenant, &namespace, &topic)?;
    let partitions: u32 = json_body(&body, "the number of partitions")?;
    match state.topics.create_partitions(&name, partitions).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(TopicError::NotFound(_)) => Err(topic_not_found(&name)),
        Err(e) => Err(e.into()),
    }
}

async fn metadata(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    let name = topic_name(&tenant, &namespace, &topic)?;
    // A partition, a non-partitioned topic and a missing topic all say 0, as in Pulsar.
    let partitions = match state.topics.partitions(&name, false).await {
        Ok(n) => n,
        Err(TopicError::NotFound(_)) => 0,
        Err(e) => return Err(e.into()),
    };
    Ok(Json(json!({ "partitions": partitions })))
}

/// Whether a partition has producers or consumers connected now.
fn in_use(state: &Shared, partition: &TopicName) -> bool {
    let open = state.topics.open_partitions().into_iter().find(|(n, _)| n == partition);
    open.is_some_and(|(_, ledger)| {
        let s = ledger.stats().snapshot();
        s.producers > 0 || s.consumers > 0
    })
}

async fn delete(state: &Shared, name: &TopicName, force: bool) -> Result<StatusCode, ApiError> {
    let (_, partitions) = partitions_of(state, name).await?;
    if !force && partitions.iter().any(|p| in_use(state, p)) {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            format!("Topic {name} has active producers/subscriptions (delete with force=true to close them)"),
        ));
    }
    match state.topics.delete(name).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(TopicError::NotFound(_)) => Err(topic_not_found(name)),
        Err(e) => Err(e.into()),
    }
}

fn force(query: &HashMap<String, String>) -> bool {
    query.get("force").is_some_and(|v| v == "true")
}

async fn delete_non_partitioned(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    let name = topic_name(&tenant, &namespace, &topic)?;
    if state.topics.record(&name).await?.is_some_and(|r| r.partitions > 0) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{name} is a partitioned topic: delete it with DELETE …/partitions"),
        ));
    }
    delete(&state, &name, force(&query)).await
}

async fn delete_partitioned(
    state: Shared,
    headers: HeaderMap,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    require_tenant_admin(&state, &headers, &tenant).await?;
    let name = topic_name(&tenant, &namespace, &topic)?;
    match state.topics.record(&name).await? {
        Some(r) if r.partitions > 0 => delete(&state, &name, force(&query)).await,
        Some(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{name} is not partitioned: delete it with DELETE on the topic"),
        )),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("Partitioned topic {name} not found"))),
    }
}
