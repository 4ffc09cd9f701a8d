//! JoinGroup (key 11).
//!
//! Versions: 0-9. v0 has no rebalance timeout (the session timeout stands in,
//! as in Kafka); v4+ first joins get MEMBER_ID_REQUIRED with the member id to
//! rejoin with; v5+ static members (`group.instance.id`); v9 lets a rejoining
//! static leader skip the assignment. The group semantics live in
//! [`crate::coordinator::group`].
//! Authorization ([`crate::authz`]): the group needs `consume` on the
//! session's group namespace ([`crate::authz::group_namespace`]), else
//! GROUP_AUTHORIZATION_FAILED (30).
//! Group ids are per namespace while authorization is on: the group is
//! the coordinator's `<group namespace>/<id>` ([`crate::authz`],
//! [`RequestContext::group_key`]). Groups created while authorization was
//! off keep unscoped ids and are not visible to scoped sessions.
//! Gaps: `group.max.size` is not enforced; the join reason (v8+) is not logged.

use kafka_protocol::{
    messages::{join_group_response::JoinGroupResponseMember, JoinGroupRequest, JoinGroupResponse},
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;
use crate::{
    coordinator::{JoinOutcome, JoinRequest},
    errors,
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 9 };

/// Joins the member to its group; answers when the rebalance completes.
pub async fn handle(ctx: &RequestContext<'_>, request: JoinGroupRequest) -> JoinGroupResponse {
    let group = request.group_id.0.to_string();
    let outcome = if group.is_empty() {
        JoinOutcome::error(errors::INVALID_GROUP_ID, "")
    } else if !ctx.allowed_group(&group).await {
        JoinOutcome::error(errors::GROUP_AUTHORIZATION_FAILED, request.member_id.as_str())
    } else {
        let join = JoinRequest {
            member_id: request.member_id.to_string(),
            instance_id: request.group_instance_id.map(|s| s.to_string()),
            client_id: ctx.header.client_id.as_deref().unwrap_or("").to_owned(),
            client_host: ctx.client_host.to_owned(),
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: if ctx.version >= 1 {
                request.rebalance_timeout_ms
            } else {
                request.session_timeout_ms
            },
            protocol_type: request.protocol_type.to_string(),
            protocols: request.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
            require_known_member_id: ctx.version >= 4,
            supports_skip_assignment: ctx.version >= 9,
        };
        ctx.shared.coordinator.join(&ctx.group_key(&group), join).await
    };
    let s = |v: String| StrBytes::from_string(v);
    let members = outcome
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(s(m.member_id))
                .with_group_instance_id(m.instance_id.map(s))
                .with_metadata(m.metadata)
        })
        .collect();
    // The protocol name is nullable only from v7.
    let protocol = match outcome.protocol {
        Some(p) => Some(s(p)),
        None if ctx.version < 7 => Some(StrBytes::default()),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(outcome.error)
        .with_generation_id(outcome.generation)
        .with_protocol_type(outcome.protocol_type.map(s))
        .with_protocol_name(protocol)
        .with_leader(s(outcome.leader))
        .with_skip_assignment(outcome.skip_assignment)
        .with_member_id(s(outcome.member_id))
        .with_members(members)
}
