//! FindCoordinator (key 10).
//!
//! Versions: 0-4 (v4 batches keys). For a group key this broker is the
//! coordinator, at the advertised address of the listener the client used.
//! Gaps: transaction coordinators (key type 1) answer COORDINATOR_NOT_AVAILABLE.

use kafka_protocol::{
    messages::{find_coordinator_response::Coordinator, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse},
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;
use crate::errors;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

const GROUP: i8 = 0;

/// Names this broker as the coordinator of every group.
pub fn handle(ctx: &RequestContext<'_>, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let node = BrokerId(ctx.shared.broker.node_id);
    let host = StrBytes::from_string(ctx.listener.advertised_host.clone());
    let port = ctx.listener.advertised_port;
    let error = if request.key_type == GROUP { 0 } else { errors::COORDINATOR_NOT_AVAILABLE };
    if ctx.version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key).with_error_code(error);
                if error == 0 {
                    c.with_node_id(node).with_host(host.clone()).with_port(port)
                } else {
                    c.with_node_id(BrokerId(-1))
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    if error != 0 {
        return FindCoordinatorResponse::default().with_error_code(error).with_node_id(BrokerId(-1));
    }
    FindCoordinatorResponse::default().with_node_id(node).with_host(host).with_port(port)
}
