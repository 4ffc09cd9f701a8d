//! LeaveGroup (key 13).
//!
//! Versions: 0-5. v0-2 name one member; v3+ a batch of members, by member id
//! or (static members) by instance id, each with its own error code.
//! Authorization ([`crate::authz`]): the group needs `consume` on the
//! session's group namespace ([`crate::authz::group_namespace`]), else
//! GROUP_AUTHORIZATION_FAILED (30) (the response's, with no member
//! listed).
//! Group ids are per namespace while authorization is on: the group is
//! the coordinator's `<group namespace>/<id>` ([`crate::authz`],
//! [`RequestContext::group_key`]). Groups created while authorization was
//! off keep unscoped ids and are not visible to scoped sessions.

use kafka_protocol::{
    messages::{leave_group_response::MemberResponse, LeaveGroupRequest, LeaveGroupResponse},
    protocol::VersionRange,
};

use super::RequestContext;
use crate::errors;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

/// Removes the members; the rest of the group rebalances.
pub async fn handle(ctx: &RequestContext<'_>, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let group = request.group_id.0.to_string();
    if group.is_empty() {
        return LeaveGroupResponse::default().with_error_code(errors::INVALID_GROUP_ID);
    }
    if !ctx.allowed_group(&group).await {
        return LeaveGroupResponse::default().with_error_code(errors::GROUP_AUTHORIZATION_FAILED);
    }
    let batched = ctx.version >= 3;
    let members: Vec<(String, Option<String>)> = if batched {
        request
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string())))
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let codes = match ctx.shared.coordinator.leave(&ctx.group_key(&group), members).await {
        Ok(codes) => codes,
        Err(code) => return LeaveGroupResponse::default().with_error_code(code),
    };
    if !batched {
        return LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(errors::NONE));
    }
    let responses = request
        .members
        .into_iter()
        .zip(codes)
        .map(|(m, code)| {
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}
