//! FindCoordinator (key 10).
//!
//! Versions: 0-4 (v4 batches keys). A group's coordinator is the broker
//! that owns its partition of the offsets topic (Kafka's hash of the group
//! id, [`Coordinator::partition_of`](crate::coordinator::Coordinator::partition_of)),
//! at the client's listener: standalone, this broker. An owner not
//! reachable on this listener yet answers COORDINATOR_NOT_AVAILABLE, which
//! clients retry.
//! Authorization ([`crate::authz`]): a group key needs `consume` on the
//! session's group namespace ([`crate::authz::group_namespace`]), else
//! GROUP_AUTHORIZATION_FAILED (30) for that key. Group ids are per
//! namespace while authorization is on: the key is hashed as the group APIs
//! name the group to the coordinator, `<group namespace>/<key>`
//! ([`crate::authz`], [`RequestContext::group_key`]), so both agree on its
//! partition; v4's `coordinators[].key` echoes the client's key. Groups
//! created while authorization was off keep unscoped ids and are not
//! visible to scoped sessions.
//! A transactional id (key type 1) is placed as a group id is (its
//! transactions live in the same coordinator partitions, see
//! [`crate::coordinator`]), unscoped; with transactions disabled
//! (`kafkaTransactionCoordinatorEnabled=false`, entryFormat=pulsar) it
//! answers COORDINATOR_NOT_AVAILABLE.

use kafka_protocol::{
    messages::{find_coordinator_response::Coordinator, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse},
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;
use crate::{cluster::Node, errors};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// The coordinator of group `key`, or the error to answer.
async fn coordinator(ctx: &RequestContext<'_>, nodes: &[Node], key_type: i8, key: &str) -> Result<Node, i16> {
    let placed = match key_type {
        GROUP => {
            if !ctx.allowed_group(key).await {
                return Err(errors::GROUP_AUTHORIZATION_FAILED);
            }
            ctx.group_key(key).into_owned()
        }
        TRANSACTION if super::transactions_enabled(ctx) => key.to_owned(),
        _ => return Err(errors::COORDINATOR_NOT_AVAILABLE),
    };
    let coordinator = &ctx.shared.coordinator;
    let leaders = match ctx.host() {
        Some(host) => crate::cluster::leaders(host, &coordinator.offsets_topic()).await,
        None => None,
    };
    let node_id = match leaders {
        None => ctx.shared.node_id(),
        Some(leaders) => {
            let partition = coordinator.partition_of(&placed);
            leaders.get(partition).copied().ok_or(errors::COORDINATOR_NOT_AVAILABLE)?
        }
    };
    nodes.iter().find(|n| n.id == node_id).cloned().ok_or(errors::COORDINATOR_NOT_AVAILABLE)
}

/// Names the coordinator of each key.
pub async fn handle(ctx: &RequestContext<'_>, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let nodes = crate::cluster::nodes(ctx).await;
    if ctx.version >= 4 {
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in request.coordinator_keys {
            let found = coordinator(ctx, &nodes, request.key_type, key.as_str()).await;
            let c = Coordinator::default().with_key(key);
            coordinators.push(match found {
                Ok(n) => c.with_node_id(BrokerId(n.id)).with_host(StrBytes::from_string(n.host)).with_port(n.port),
                Err(code) => c.with_error_code(code).with_node_id(BrokerId(-1)),
            });
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match coordinator(ctx, &nodes, request.key_type, request.key.as_str()).await {
        Ok(n) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(n.id))
            .with_host(StrBytes::from_string(n.host))
            .with_port(n.port),
        Err(code) => FindCoordinatorResponse::default().with_error_code(code).with_node_id(BrokerId(-1)),
    }
}
