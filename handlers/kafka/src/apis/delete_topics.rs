//! DeleteTopics (key 20).
//!
//! Versions: 1-5. Deletes the Pulsar topic (every partition's data).
//! Authorization ([`crate::authz`]): `admin` on the topic (a tenant
//! admin's right); refused, TOPIC_AUTHORIZATION_FAILED (29).
//! Gaps: deletion by topic id (v6) is not served.

use kafka_protocol::{
    messages::{delete_topics_response::DeletableTopicResult, DeleteTopicsRequest, DeleteTopicsResponse},
    protocol::{StrBytes, VersionRange},
};
use polyport_handler_api::storage::Operation;

use super::RequestContext;
use crate::errors;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 5 };

/// Deletes every named topic.
pub async fn handle(ctx: &RequestContext<'_>, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mapper = &ctx.shared.topics;
    let mut results = Vec::new();
    for name in request.topic_names {
        let result = DeletableTopicResult::default().with_name(Some(name.clone()));
        let refused = ctx.topic_denied(Operation::Admin, name.as_str()).await;
        let outcome = match (mapper.pulsar(name.as_str()), ctx.host()) {
            (Err(code), _) => Err((code, "invalid topic name".to_owned())),
            (Ok(_), _) if refused => Err((errors::TOPIC_AUTHORIZATION_FAILED, super::not_authorized(name.as_str()))),
            (Ok(_), None) => Err((errors::KAFKA_STORAGE_ERROR, "no storage".to_owned())),
            (Ok(pulsar), Some(host)) => {
                let done = host.delete_topic(&pulsar).await;
                mapper.forget(&pulsar);
                ctx.shared.txn_index.forget_topic(&pulsar);
                done.map_err(|e| (errors::from_handler(&e), e.message().to_owned()))
            }
        };
        results.push(match outcome {
            Ok(()) => result,
            Err((code, message)) => {
                result.with_error_code(code).with_error_message(Some(StrBytes::from_string(message)))
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(results)
}
