//! ListGroups (key 16).
//!
//! Versions: 0-5. Every group this broker coordinates, groups that only hold
//! committed offsets included; v4+ filter by state (case-insensitive, as
//! Kafka), v5+ by type: every group here is `classic`.
//! Authorization ([`crate::authz`]): only the groups the role may use are
//! listed, as Kafka lists those it may describe; every group needs `consume`
//! on the session's group namespace, so that is all of them or none (an
//! empty list, no error). Group ids are per namespace while authorization
//! is on: only the coordinator's groups `<group namespace>/<id>` of the
//! session's namespace are listed, as `<id>` ([`crate::authz`],
//! [`RequestContext::client_group_id`]). Groups created while authorization
//! was off keep unscoped ids and are not listed to scoped sessions.

use kafka_protocol::{
    messages::{list_groups_response::ListedGroup, GroupId, ListGroupsRequest, ListGroupsResponse},
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

/// Lists the groups.
pub async fn handle(ctx: &RequestContext<'_>, request: ListGroupsRequest) -> ListGroupsResponse {
    if !ctx.permitted_groups().await {
        tracing::info!(role = ctx.session.role.as_deref().unwrap_or("anonymous"), namespace = %ctx.group_namespace(),
            "ListGroups lists no group: the role may not consume in its group namespace");
        return ListGroupsResponse::default();
    }
    let listings = match ctx.shared.coordinator.list().await {
        Ok(l) => l,
        Err(code) => return ListGroupsResponse::default().with_error_code(code),
    };
    let states: Vec<String> = request.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types_ok =
        request.types_filter.is_empty() || request.types_filter.iter().any(|t| t.eq_ignore_ascii_case("classic"));
    let groups = listings
        .into_iter()
        .filter(|g| types_ok && (states.is_empty() || states.contains(&g.state.to_lowercase())))
        .filter_map(|g| {
            let id = ctx.client_group_id(&g.group)?.to_owned();
            Some(
                ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(id)))
                    .with_protocol_type(StrBytes::from_string(g.protocol_type))
                    .with_group_state(StrBytes::from_static_str(g.state))
                    .with_group_type(StrBytes::from_static_str("classic")),
            )
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
