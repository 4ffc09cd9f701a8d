//! AlterConfigs (key 33).
//!
//! Versions: 0-2. The legacy API: the configs given replace every dynamic
//! config of the resource, so an alterable config left out goes back to
//! inheriting (the namespace's, then the broker's value). Topic resources
//! accept `retention.ms` and `retention.bytes` (integers, -1 or more); any
//! other name is refused with INVALID_CONFIG, a name given twice or a null
//! value with INVALID_REQUEST, and nothing of that resource is changed.
//! `validate_only` checks (the topic must exist) without changing anything.
//! Broker configs are read-only (INVALID_REQUEST): they are set in
//! broker.conf.
//! Authorization ([`crate::authz`], checked before the configs): a topic
//! needs `admin` on it (a tenant admin's right), else
//! TOPIC_AUTHORIZATION_FAILED (29); the broker, which Pulsar's model has no
//! resource for, needs `admin` on `kafkaTenant/kafkaNamespace`, else
//! CLUSTER_AUTHORIZATION_FAILED (31).
//! Gaps: the topic's other Pulsar policies (message TTL) are kept as they are.

use std::collections::HashSet;

use kafka_protocol::{
    messages::{alter_configs_response::AlterConfigsResourceResponse, AlterConfigsRequest, AlterConfigsResponse},
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;
use crate::configs;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

/// Replaces the configs of every resource.
pub async fn handle(ctx: &RequestContext<'_>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let changes = || {
            let mut seen = HashSet::new();
            let mut changes = Vec::new();
            for config in &resource.configs {
                let name = config.name.as_str();
                if !seen.insert(name) {
                    return Err(configs::duplicate(name));
                }
                let value = config.value.as_ref().ok_or_else(|| configs::null_value(name))?;
                changes.push(configs::change(name, Some(value.as_str()))?);
            }
            Ok(changes)
        };
        let outcome = configs::alter_topic(
            ctx,
            resource.resource_type,
            resource.resource_name.as_str(),
            request.validate_only,
            true,
            changes,
        )
        .await;
        responses.push(match outcome {
            Ok(()) => response,
            Err((code, message)) => {
                response.with_error_code(code).with_error_message(Some(StrBytes::from_string(message)))
            }
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}
