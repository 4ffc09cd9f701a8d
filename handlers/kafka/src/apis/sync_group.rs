//! SyncGroup (key 14).
//!
//! Versions: 0-5. The leader's SyncGroup carries every member's assignment;
//! the others wait for it. v3+ static members; v5 checks the protocol type
//! and name against the group's.
//! Authorization ([`crate::authz`]): the group needs `consume` on the
//! session's group namespace ([`crate::authz::group_namespace`]), else
//! GROUP_AUTHORIZATION_FAILED (30).
//! Group ids are per namespace while authorization is on: the group is
//! the coordinator's `<group namespace>/<id>` ([`crate::authz`],
//! [`RequestContext::group_key`]). Groups created while authorization was
//! off keep unscoped ids and are not visible to scoped sessions.

use kafka_protocol::{
    messages::{SyncGroupRequest, SyncGroupResponse},
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;
use crate::{
    coordinator::{SyncOutcome, SyncRequest},
    errors,
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

/// Hands the member its assignment once the leader has sent them.
pub async fn handle(ctx: &RequestContext<'_>, request: SyncGroupRequest) -> SyncGroupResponse {
    let group = request.group_id.0.to_string();
    let outcome = if group.is_empty() {
        SyncOutcome::error(errors::INVALID_GROUP_ID)
    } else if !ctx.allowed_group(&group).await {
        SyncOutcome::error(errors::GROUP_AUTHORIZATION_FAILED)
    } else {
        let sync = SyncRequest {
            member_id: request.member_id.to_string(),
            instance_id: request.group_instance_id.map(|s| s.to_string()),
            generation: request.generation_id,
            protocol_type: request.protocol_type.map(|s| s.to_string()),
            protocol: request.protocol_name.map(|s| s.to_string()),
            assignments: request.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
        };
        ctx.shared.coordinator.sync(&ctx.group_key(&group), sync).await
    };
    SyncGroupResponse::default()
        .with_error_code(outcome.error)
        .with_protocol_type(outcome.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(outcome.protocol.map(StrBytes::from_string))
        .with_assignment(outcome.assignment)
}
