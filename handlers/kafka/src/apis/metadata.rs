//! Metadata (key 3).
//!
//! Versions: 0-12. Answers with this broker, at the advertised address of the
//! listener the client connected on, as node 0 and controller.
//! Gaps: there is no storage yet, so the cluster has no topics: a request for
//! named topics answers UNKNOWN_TOPIC_OR_PARTITION for each (UNKNOWN_TOPIC_ID
//! for topic ids), and auto-creation is not performed.

use kafka_protocol::{
    messages::{
        metadata_response::{MetadataResponseBroker, MetadataResponseTopic},
        BrokerId, MetadataRequest, MetadataResponse,
    },
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 12 };

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const UNKNOWN_TOPIC_ID: i16 = 100;

/// Describes the cluster: one broker, no topics.
pub fn handle(ctx: &RequestContext<'_>, request: MetadataRequest) -> MetadataResponse {
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(ctx.broker.node_id))
        .with_host(StrBytes::from_string(ctx.listener.advertised_host.clone()))
        .with_port(ctx.listener.advertised_port);
    // v0 has no null topic list: an empty list means "all topics". Either way
    // there are none to list.
    let topics = request
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|t| match t.name {
            Some(name) => {
                MetadataResponseTopic::default().with_name(Some(name)).with_error_code(UNKNOWN_TOPIC_OR_PARTITION)
            }
            None => MetadataResponseTopic::default().with_topic_id(t.topic_id).with_error_code(UNKNOWN_TOPIC_ID),
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_string(ctx.broker.cluster_id.clone())))
        .with_controller_id(BrokerId(ctx.broker.node_id))
        .with_topics(topics)
}
