//! CreateAcls (key 30).
//!
//! Versions: 1-3 (pattern types; flexible from v2). Each ACL Pulsar's
//! grants can express ([`crate::acls`]: TOPIC, LITERAL, ALLOW, host `*`,
//! `User:<role>`, READ, WRITE or ALL) adds its actions (`consume`,
//! `produce`, or both) to the role's grant on the topic (its Pulsar topic,
//! so `tenant/ns/x` is in that namespace), or on the default namespace for
//! topic `*` (`tenant/ns/*` for another namespace): the grant is read,
//! merged and set. Creating an ACL that exists changes nothing and
//! succeeds, as in Kafka.
//! Per creation: INVALID_REQUEST (42) for what grants cannot express, with
//! the reason (DENY, PREFIXED or MATCH, GROUP, CLUSTER, TRANSACTIONAL_ID,
//! DELEGATION_TOKEN or USER resources, a host other than `*`, a principal
//! not `User:`, DESCRIBE alone or another operation, an invalid name);
//! RESOURCE_NOT_FOUND (91) for a namespace that does not exist;
//! CLUSTER_AUTHORIZATION_FAILED (31) when the role does not administer the
//! topic's tenant (the host's rule; Kafka's ALTER on CLUSTER).
//! Gaps: the read-merge-set is not atomic: a grant changed by another
//! client between the read and the set loses that change.

use kafka_protocol::{
    messages::{create_acls_response::AclCreationResult, CreateAclsRequest, CreateAclsResponse},
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;
use crate::{
    acls::{self, Creation},
    admin::{self, SecurityAdmin},
    errors,
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 3 };

/// Adds `creation`'s actions to its role's grant.
async fn add(ctx: &RequestContext<'_>, admin: &dyn SecurityAdmin, creation: &Creation) -> Result<(), (i16, String)> {
    let target = &creation.target;
    let refused = |e: &polyport_handler_api::HandlerError| {
        acls::refused(ctx, e, &target.resource);
        admin::host_error(e)
    };
    let grants = admin.grants(ctx.role(), &target.namespace).await.map_err(|e| refused(&e))?;
    let mut actions: Vec<String> = grants
        .iter()
        .filter(|g| g.resource.as_str() == target.resource && g.role.as_str() == creation.role)
        .flat_map(|g| g.actions.iter().map(|a| a.as_str().to_owned()))
        .collect();
    let before = actions.len();
    for action in &creation.actions {
        if !actions.iter().any(|a| a == action.as_str()) {
            actions.push(action.as_str().to_owned());
        }
    }
    if actions.len() == before {
        return Ok(());
    }
    admin
        .set_grant(ctx.role(), admin::grant(&target.resource, &creation.role, &actions))
        .await
        .map_err(|e| refused(&e))?;
    tracing::info!(role = ctx.role().unwrap_or("anonymous"), resource = %target.resource, grantee = %creation.role,
        actions = ?actions, "ACL created: grant set");
    Ok(())
}

/// Creates each ACL as a grant.
pub async fn handle(ctx: &RequestContext<'_>, request: CreateAclsRequest) -> CreateAclsResponse {
    let mut results = Vec::with_capacity(request.creations.len());
    for acl in &request.creations {
        let outcome = match (acls::creation(&ctx.shared.topics, acl), ctx.security_admin()) {
            (Err(message), _) => Err((errors::INVALID_REQUEST, message)),
            (Ok(_), None) => Err(admin::no_host()),
            (Ok(creation), Some(admin)) => add(ctx, admin, &creation).await,
        };
        let result = match outcome {
            Ok(()) => AclCreationResult::default(),
            Err((code, message)) => AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message))),
        };
        results.push(result);
    }
    CreateAclsResponse::default().with_results(results)
}
