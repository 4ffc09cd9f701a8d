//! Heartbeat (key 12).
//!
//! Versions: 0-4 (v3+ static members). Keeps the member's session alive;
//! REBALANCE_IN_PROGRESS tells it to rejoin.
//! Authorization ([`crate::authz`]): the group needs `consume` on the
//! session's group namespace ([`crate::authz::group_namespace`]), else
//! GROUP_AUTHORIZATION_FAILED (30).
//! Group ids are per namespace while authorization is on: the group is
//! the coordinator's `<group namespace>/<id>` ([`crate::authz`],
//! [`RequestContext::group_key`]). Groups created while authorization was
//! off keep unscoped ids and are not visible to scoped sessions.

use kafka_protocol::{
    messages::{HeartbeatRequest, HeartbeatResponse},
    protocol::VersionRange,
};

use super::RequestContext;
use crate::{coordinator::Committer, errors};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

/// Refreshes the member's session.
pub async fn handle(ctx: &RequestContext<'_>, request: HeartbeatRequest) -> HeartbeatResponse {
    let group = request.group_id.0.to_string();
    let code = if group.is_empty() {
        errors::INVALID_GROUP_ID
    } else if !ctx.allowed_group(&group).await {
        errors::GROUP_AUTHORIZATION_FAILED
    } else {
        let who = Committer {
            member_id: request.member_id.to_string(),
            instance_id: request.group_instance_id.map(|s| s.to_string()),
            generation: request.generation_id,
        };
        ctx.shared.coordinator.heartbeat(&ctx.group_key(&group), who).await
    };
    HeartbeatResponse::default().with_error_code(code)
}
