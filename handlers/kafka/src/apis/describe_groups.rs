//! DescribeGroups (key 15).
//!
//! Versions: 0-6. State, protocol type, chosen assignor and members (client
//! id and address; subscription and assignment once Stable, as Kafka shows
//! them). An unknown group is `Dead` with no error up to v5, and
//! GROUP_ID_NOT_FOUND from v6 (Kafka 4's behaviour).
//! Authorization ([`crate::authz`]): each group needs `consume` on the
//! session's group namespace ([`crate::authz::group_namespace`]), else it
//! is answered GROUP_AUTHORIZATION_FAILED (30) and nothing else. Authorized
//! operations (v3+, when asked) are every group operation (READ, DESCRIBE,
//! DELETE), which all need that one grant.
//! Group ids are per namespace while authorization is on: each group is
//! the coordinator's `<group namespace>/<id>` ([`crate::authz`],
//! [`RequestContext::group_key`]), and is answered under the client's id.
//! Groups created while authorization was off keep unscoped ids and are
//! not visible to scoped sessions.

use kafka_protocol::{
    messages::{
        describe_groups_response::{DescribedGroup, DescribedGroupMember},
        DescribeGroupsRequest, DescribeGroupsResponse,
    },
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;
use crate::errors;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 6 };

/// Describes each group asked for.
pub async fn handle(ctx: &RequestContext<'_>, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let s = StrBytes::from_string;
    let mut groups = Vec::new();
    for id in request.groups {
        if !ctx.allowed_group(id.as_str()).await {
            groups.push(
                DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(errors::GROUP_AUTHORIZATION_FAILED)
                    .with_authorized_operations(super::authorized::NOT_PROVIDED),
            );
            continue;
        }
        let operations = super::authorized::group(request.include_authorized_operations);
        let described = DescribedGroup::default().with_authorized_operations(operations);
        let described = match ctx.shared.coordinator.describe(&ctx.group_key(id.as_str())).await {
            Err(code) => described.with_error_code(code),
            Ok(None) if ctx.version >= 6 => described
                .with_error_code(errors::GROUP_ID_NOT_FOUND)
                .with_error_message(Some(s(format!("Group {} not found.", id.as_str()))))
                .with_group_state(StrBytes::from_static_str("Dead")),
            Ok(None) => described.with_group_state(StrBytes::from_static_str("Dead")),
            Ok(Some(d)) => described
                .with_group_state(StrBytes::from_static_str(d.state))
                .with_protocol_type(s(d.protocol_type))
                .with_protocol_data(s(d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(s(m.member_id))
                                .with_group_instance_id(m.instance_id.map(s))
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
        };
        groups.push(described.with_group_id(id));
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
