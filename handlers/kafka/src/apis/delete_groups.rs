//! DeleteGroups (key 42).
//!
//! Versions: 0-2. Only a group without members can be deleted
//! (NON_EMPTY_GROUP otherwise); its offsets and metadata get tombstones in
//! the system topic and its cursors are deleted, so retention no longer
//! waits for it.
//! Authorization ([`crate::authz`]): the group needs `consume` on the
//! session's group namespace ([`crate::authz::group_namespace`]), else
//! GROUP_AUTHORIZATION_FAILED (30).
//! Group ids are per namespace while authorization is on: the group is
//! the coordinator's `<group namespace>/<id>` ([`crate::authz`],
//! [`RequestContext::group_key`]). Groups created while authorization was
//! off keep unscoped ids and are not visible to scoped sessions.
//! Each result echoes the client's id.

use kafka_protocol::{
    messages::{delete_groups_response::DeletableGroupResult, DeleteGroupsRequest, DeleteGroupsResponse},
    protocol::VersionRange,
};

use super::RequestContext;
use crate::errors;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

/// Deletes each empty group.
pub async fn handle(ctx: &RequestContext<'_>, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for id in request.groups_names {
        let code = if id.is_empty() {
            errors::INVALID_GROUP_ID
        } else if !ctx.allowed_group(id.as_str()).await {
            errors::GROUP_AUTHORIZATION_FAILED
        } else {
            ctx.shared.coordinator.delete(&ctx.group_key(id.as_str())).await
        };
        results.push(DeletableGroupResult::default().with_group_id(id).with_error_code(code));
    }
    DeleteGroupsResponse::default().with_results(results)
}
