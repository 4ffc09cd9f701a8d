//! DeleteAcls (key 31).
//!
//! Versions: 1-3 (pattern types; flexible from v2). Each filter finds the
//! ACLs DescribeAcls would list for it ([`crate::acls`]) and removes them
//! from their grants: the matching actions leave the role's grant, and a
//! grant left with no action is revoked (actions that are not ACLs, such as
//! Pulsar's `functions`, stay). The ACLs removed are returned in
//! `matching_acls`; filters apply in order, each to what the previous
//! ones left.
//! Per filter: INVALID_REQUEST (42) for an UNKNOWN code;
//! CLUSTER_AUTHORIZATION_FAILED (31) when the role may not read the grants
//! (a tenant admin's right, by the host's rule; Kafka's ALTER on CLUSTER).
//! Per matching ACL: the host's refusal to change its grant (31 again, or
//! another error), the ACL then staying. A filter only for what grants
//! cannot hold matches nothing.
//! Gaps: as CreateAcls, the read-change-set of a grant is not atomic.

use std::collections::BTreeMap;

use kafka_protocol::{
    messages::{
        delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl},
        DeleteAclsRequest, DeleteAclsResponse,
    },
    protocol::{StrBytes, VersionRange},
};
use polyport_handler_api::Grant;

use super::RequestContext;
use crate::{
    acls::{self, Binding, Filter},
    admin::{self, SecurityAdmin},
    errors,
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 3 };

fn matching_acl(binding: &Binding, error: Option<&(i16, String)>) -> DeleteAclsMatchingAcl {
    let acl = DeleteAclsMatchingAcl::default()
        .with_resource_type(acls::RESOURCE_TOPIC)
        .with_resource_name(StrBytes::from_string(binding.name.clone()))
        .with_pattern_type(acls::PATTERN_LITERAL)
        .with_principal(StrBytes::from_string(binding.principal()))
        .with_host(StrBytes::from_static_str(acls::WILDCARD))
        .with_operation(binding.action.operation())
        .with_permission_type(acls::PERMISSION_ALLOW);
    match error {
        Some((code, message)) => {
            acl.with_error_code(*code).with_error_message(Some(StrBytes::from_string(message.clone())))
        }
        None => acl,
    }
}

fn failed(code: i16, message: String) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default().with_error_code(code).with_error_message(Some(StrBytes::from_string(message)))
}

/// Removes what `filter` matches.
async fn delete(ctx: &RequestContext<'_>, admin: &dyn SecurityAdmin, filter: &Filter) -> DeleteAclsFilterResult {
    let mapper = &ctx.shared.topics;
    let grants = match acls::read(ctx, admin, filter).await {
        Ok(grants) => grants,
        Err((code, message)) => return failed(code, message),
    };
    // The matches of each grant, by (resource, role).
    let mut by_grant: BTreeMap<(String, String), Vec<Binding>> = BTreeMap::new();
    for binding in acls::matching(mapper, filter, &grants) {
        by_grant.entry((binding.resource.clone(), binding.role.clone())).or_default().push(binding);
    }
    let mut matched = Vec::new();
    for ((resource, role), bindings) in by_grant {
        let held: Vec<String> = grants
            .iter()
            .filter(|g: &&Grant| g.resource.as_str() == resource && g.role.as_str() == role)
            .flat_map(|g| g.actions.iter().map(|a| a.as_str().to_owned()))
            .collect();
        let left: Vec<String> = held.into_iter().filter(|a| !bindings.iter().any(|b| b.action.as_str() == a)).collect();
        let error = match admin.set_grant(ctx.role(), admin::grant(&resource, &role, &left)).await {
            Ok(()) => {
                tracing::info!(role = ctx.role().unwrap_or("anonymous"), resource = %resource, grantee = %role,
                    actions = ?left, "ACLs deleted: grant set");
                None
            }
            Err(e) => {
                acls::refused(ctx, &e, &resource);
                Some(admin::host_error(&e))
            }
        };
        matched.extend(bindings.iter().map(|b| matching_acl(b, error.as_ref())));
    }
    DeleteAclsFilterResult::default().with_matching_acls(matched)
}

/// Applies each filter in turn.
pub async fn handle(ctx: &RequestContext<'_>, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let mut results = Vec::with_capacity(request.filters.len());
    for f in &request.filters {
        let result = match (Filter::delete(f), ctx.security_admin()) {
            (Err(message), _) => failed(errors::INVALID_REQUEST, message),
            (Ok(filter), _) if filter.namespaces(&ctx.shared.topics).is_empty() => DeleteAclsFilterResult::default(),
            (Ok(_), None) => {
                let (code, message) = admin::no_host();
                failed(code, message)
            }
            (Ok(filter), Some(admin)) => delete(ctx, admin, &filter).await,
        };
        results.push(result);
    }
    DeleteAclsResponse::default().with_filter_results(results)
}
