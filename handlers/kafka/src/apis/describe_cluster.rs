//! DescribeCluster (key 60).
//!
//! Versions: 0-1. The cluster id (`clusterName`), this broker as node 0 and
//! the controller, at the advertised address of the listener the client
//! connected on (no rack). v1's `endpoint_type` BROKERS (1) is echoed;
//! CONTROLLERS (2) answers UNSUPPORTED_ENDPOINT_TYPE, as a Kafka broker does
//! (there is no separate controller quorum to list).
//! `cluster_authorized_operations`, when asked for, lists every cluster
//! operation, as Kafka does without an authorizer, and the role's when
//! authorization is on ([`super::authorized::cluster_for`]). No grant is
//! needed to describe the cluster.
//! Gaps: v2 (fenced brokers) is not served.

use kafka_protocol::{
    messages::{
        describe_cluster_response::DescribeClusterBroker, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
    },
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;
use crate::errors;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

const BROKERS: i8 = 1;

/// Describes the cluster: every live broker at the client's listener.
pub async fn handle(ctx: &RequestContext<'_>, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let node = BrokerId(ctx.shared.node_id());
    // v0 has no endpoint type and means brokers (the default, 1).
    let endpoint_type = if ctx.version >= 1 { request.endpoint_type } else { BROKERS };
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(endpoint_type)
        .with_cluster_id(StrBytes::from_string(ctx.shared.broker.cluster_id.clone()));
    if endpoint_type != BROKERS {
        return response.with_error_code(errors::UNSUPPORTED_ENDPOINT_TYPE).with_error_message(Some(
            StrBytes::from_string(format!("endpoint type {endpoint_type}: a broker describes brokers (1) only")),
        ));
    }
    let operations = if request.include_cluster_authorized_operations && ctx.authorizing() {
        super::authorized::cluster_for(ctx).await
    } else {
        super::authorized::cluster(request.include_cluster_authorized_operations)
    };
    response.with_cluster_authorized_operations(operations).with_controller_id(node).with_brokers(
        crate::cluster::nodes(ctx)
            .await
            .into_iter()
            .map(|n| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(n.id))
                    .with_host(StrBytes::from_string(n.host))
                    .with_port(n.port)
                    .with_rack(None)
            })
            .collect(),
    )
}
