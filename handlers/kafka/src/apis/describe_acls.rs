//! DescribeAcls (key 29).
//!
//! Versions: 1-3 (pattern types; flexible from v2). Lists Pulsar's grants
//! as Kafka ACLs ([`crate::acls`]): those of the default namespace
//! (`kafkaTenant/kafkaNamespace`; its namespace grant as topic `*`, its
//! topics' grants by their names), or, when the filter names a topic of
//! another namespace (`tenant/ns/x`, or `tenant/ns/*` for its namespace
//! grant), that namespace's. Every ACL is ALLOW, LITERAL, host `*`,
//! `User:<role>`, one per action: READ for `consume`, WRITE for `produce`.
//! The filter is Kafka's (resource type ANY or TOPIC, pattern ANY, MATCH
//! or LITERAL, name, principal, host, operation, permission ANY or ALLOW),
//! with names compared as the topics they stand for and ALL matching READ
//! and WRITE. A filter only for what grants cannot hold (DENY, GROUP,
//! PREFIXED, DESCRIBE, a host other than `*`, …) gets an empty list; one
//! with an UNKNOWN code INVALID_REQUEST (42).
//! Authorization: the host's, a tenant admin's right over the namespace
//! (Kafka's DESCRIBE on CLUSTER): CLUSTER_AUTHORIZATION_FAILED (31) in the
//! top-level error, with the host's reason.
//! Gaps: Kafka answers SECURITY_DISABLED without an authorizer; this broker
//! lists the grants whether or not `authorizationEnabled` enforces them.
//! Namespace grants of namespaces other than the default one are listed
//! only when the filter names that namespace.

use std::collections::BTreeMap;

use kafka_protocol::{
    messages::{
        describe_acls_response::{AclDescription, DescribeAclsResource},
        DescribeAclsRequest, DescribeAclsResponse,
    },
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;
use crate::{
    acls::{self, Binding, Filter},
    admin, errors,
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 3 };

fn failed(code: i16, message: String) -> DescribeAclsResponse {
    DescribeAclsResponse::default().with_error_code(code).with_error_message(Some(StrBytes::from_string(message)))
}

/// `bindings` grouped by topic, as Kafka lists them.
pub fn resources(bindings: &[Binding]) -> Vec<DescribeAclsResource> {
    let mut by_name: BTreeMap<&str, Vec<AclDescription>> = BTreeMap::new();
    for b in bindings {
        by_name.entry(b.name.as_str()).or_default().push(
            AclDescription::default()
                .with_principal(StrBytes::from_string(b.principal()))
                .with_host(StrBytes::from_static_str(acls::WILDCARD))
                .with_operation(b.action.operation())
                .with_permission_type(acls::PERMISSION_ALLOW),
        );
    }
    by_name
        .into_iter()
        .map(|(name, entries)| {
            DescribeAclsResource::default()
                .with_resource_type(acls::RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(name.to_owned()))
                .with_pattern_type(acls::PATTERN_LITERAL)
                .with_acls(entries)
        })
        .collect()
}

/// Lists the ACLs the filter matches.
pub async fn handle(ctx: &RequestContext<'_>, request: DescribeAclsRequest) -> DescribeAclsResponse {
    let filter = match Filter::describe(&request) {
        Ok(filter) => filter,
        Err(message) => return failed(errors::INVALID_REQUEST, message),
    };
    let mapper = &ctx.shared.topics;
    if filter.namespaces(mapper).is_empty() {
        return DescribeAclsResponse::default();
    }
    let Some(admin) = ctx.security_admin() else {
        let (code, message) = admin::no_host();
        return failed(code, message);
    };
    match acls::read(ctx, admin, &filter).await {
        Ok(grants) => {
            DescribeAclsResponse::default().with_resources(resources(&acls::matching(mapper, &filter, &grants)))
        }
        Err((code, message)) => failed(code, message),
    }
}
