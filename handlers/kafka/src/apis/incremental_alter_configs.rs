//! IncrementalAlterConfigs (key 44).
//!
//! Versions: 0-1. Changes the named configs of a topic and leaves the others
//! as they are: SET (0) gives `retention.ms` or `retention.bytes` a value
//! (an integer, -1 or more), DELETE (1) removes the topic's own value so it
//! inherits again (the namespace's, then the broker's). Other config names
//! are refused with INVALID_CONFIG; APPEND (2) and SUBTRACT (3), which apply
//! to list configs only, a name given twice and a null value to SET with
//! INVALID_REQUEST; a refused resource is left unchanged. `validate_only`
//! checks (the topic must exist) without changing anything. Broker configs are
//! read-only (INVALID_REQUEST): they are set in broker.conf.
//! Authorization ([`crate::authz`], checked before the configs): a topic
//! needs `admin` on it (a tenant admin's right), else
//! TOPIC_AUTHORIZATION_FAILED (29); the broker, which Pulsar's model has no
//! resource for, needs `admin` on `kafkaTenant/kafkaNamespace`, else
//! CLUSTER_AUTHORIZATION_FAILED (31).
//! Gaps: none known for the two alterable configs.

use std::collections::HashSet;

use kafka_protocol::{
    messages::{
        incremental_alter_configs_response::AlterConfigsResourceResponse, IncrementalAlterConfigsRequest,
        IncrementalAlterConfigsResponse,
    },
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;
use crate::{configs, errors};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

const SET: i8 = 0;
const DELETE: i8 = 1;

/// Applies the operations of every resource.
pub async fn handle(
    ctx: &RequestContext<'_>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
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
                let change = match config.config_operation {
                    SET => configs::change(
                        name,
                        Some(config.value.as_ref().ok_or_else(|| configs::null_value(name))?.as_str()),
                    )?,
                    DELETE => configs::change(name, None)?,
                    op => {
                        return Err((
                            errors::INVALID_REQUEST,
                            format!("operation {op} on {name}: only SET (0) and DELETE (1) apply to it"),
                        ))
                    }
                };
                changes.push(change);
            }
            Ok(changes)
        };
        let outcome = configs::alter_topic(
            ctx,
            resource.resource_type,
            resource.resource_name.as_str(),
            request.validate_only,
            false,
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
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
