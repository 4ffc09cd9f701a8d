//! Kafka ACLs as Pulsar grants (DescribeAcls, CreateAcls, DeleteAcls).
//!
//! Pulsar's model allows; it never denies. A role holds actions
//! (`produce`, `consume`) on a namespace (every topic in it) or on a topic.
//! The Kafka ACLs it can express are therefore: resource type TOPIC,
//! pattern LITERAL, permission ALLOW, host `*`, principal `User:<role>`,
//! operation READ (`consume`), WRITE (`produce`) or ALL (both). DESCRIBE
//! comes with either and is not an ACL of its own.
//!
//! Names, both ways ([`target`], [`kafka_name`]):
//!
//! - `*` is every topic of the handler's default namespace
//!   (`kafkaTenant/kafkaNamespace`): that namespace's grant;
//! - a topic name is its Pulsar topic as [`TopicMapper::pulsar`] maps it, so
//!   `tenant/ns/x` (or `persistent://tenant/ns/x`) is a topic of another
//!   namespace, and is listed back under that name;
//! - `tenant/ns/*` is every topic of namespace `tenant/ns` (a namespace
//!   grant of a namespace other than the default one).
//!
//! A grant is listed as one binding per action: READ for `consume`, WRITE
//! for `produce`; its other actions (Pulsar's `functions`, `sources`, …)
//! are not ACLs, are not listed and are kept when ACLs change the grant.

use kafka_protocol::messages::{
    create_acls_request::AclCreation, delete_acls_request::DeleteAclsFilter, DescribeAclsRequest,
};
use polyport_handler_api::{ErrorKind, Grant};

use crate::{
    admin::{self, SecurityAdmin},
    apis::RequestContext,
    topics::{valid_name_segment, TopicMapper},
};

/// Kafka's resource type ANY (filters only).
pub const RESOURCE_ANY: i8 = 1;
/// Kafka's resource type TOPIC.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource types by code (`ResourceType`).
const RESOURCE_TYPES: [&str; 8] =
    ["UNKNOWN", "ANY", "TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID", "DELEGATION_TOKEN", "USER"];

/// Kafka's pattern type ANY (filters only).
pub const PATTERN_ANY: i8 = 1;
/// Kafka's pattern type MATCH (filters only): a literal name, the wildcard
/// `*`, or a prefix of the name.
pub const PATTERN_MATCH: i8 = 2;
/// Kafka's pattern type LITERAL.
pub const PATTERN_LITERAL: i8 = 3;
/// Kafka's pattern types by code (`PatternType`).
const PATTERN_TYPES: [&str; 5] = ["UNKNOWN", "ANY", "MATCH", "LITERAL", "PREFIXED"];

/// Kafka's operation ANY (filters only).
pub const OPERATION_ANY: i8 = 1;
/// Kafka's operation ALL.
pub const OPERATION_ALL: i8 = 2;
/// Kafka's operation READ: `consume`.
pub const OPERATION_READ: i8 = 3;
/// Kafka's operation WRITE: `produce`.
pub const OPERATION_WRITE: i8 = 4;
/// Kafka's operation DESCRIBE.
pub const OPERATION_DESCRIBE: i8 = 8;
/// Kafka's operations by code (`AclOperation`; TWO_PHASE_COMMIT is Kafka 4's).
const OPERATIONS: [&str; 16] = [
    "UNKNOWN",
    "ANY",
    "ALL",
    "READ",
    "WRITE",
    "CREATE",
    "DELETE",
    "ALTER",
    "DESCRIBE",
    "CLUSTER_ACTION",
    "DESCRIBE_CONFIGS",
    "ALTER_CONFIGS",
    "IDEMPOTENT_WRITE",
    "CREATE_TOKENS",
    "DESCRIBE_TOKENS",
    "TWO_PHASE_COMMIT",
];

/// Kafka's permission type ANY (filters only).
pub const PERMISSION_ANY: i8 = 1;
/// Kafka's permission type DENY.
pub const PERMISSION_DENY: i8 = 2;
/// Kafka's permission type ALLOW.
pub const PERMISSION_ALLOW: i8 = 3;
/// Kafka's permission types by code (`AclPermissionType`).
const PERMISSION_TYPES: [&str; 4] = ["UNKNOWN", "ANY", "DENY", "ALLOW"];

/// The name of every topic (Kafka's wildcard), and of every host.
pub const WILDCARD: &str = "*";
/// The principal type of a role.
pub const USER: &str = "User:";

/// The name of `code` in `names`, unless it is UNKNOWN (0) or out of range.
fn known(names: &[&'static str], code: i8) -> Option<&'static str> {
    usize::try_from(code).ok().filter(|c| *c > 0).and_then(|c| names.get(c).copied())
}

/// The name of a resource type code (`UNKNOWN` or `<code>` when unknown).
pub fn resource_type_name(code: i8) -> String {
    shown(&RESOURCE_TYPES, code)
}

/// The name of an operation code.
pub fn operation_name(code: i8) -> String {
    shown(&OPERATIONS, code)
}

fn shown(names: &[&'static str], code: i8) -> String {
    known(names, code).map_or_else(|| format!("UNKNOWN ({code})"), str::to_owned)
}

/// Refuses the UNKNOWN (or unheard-of) codes Kafka refuses in every ACL
/// request.
fn check_codes(resource_type: i8, pattern: i8, operation: i8, permission: i8) -> Result<(), String> {
    let fields = [
        ("resource type", &RESOURCE_TYPES[..], resource_type),
        ("pattern type", &PATTERN_TYPES[..], pattern),
        ("operation", &OPERATIONS[..], operation),
        ("permission type", &PERMISSION_TYPES[..], permission),
    ];
    match fields.iter().find(|(_, names, code)| known(names, *code).is_none()) {
        Some((field, _, code)) => Err(format!("unknown {field} {code}")),
        None => Ok(()),
    }
}

/// An action of a Pulsar grant that is a Kafka ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// `consume`: READ.
    Consume,
    /// `produce`: WRITE.
    Produce,
}

impl Action {
    /// Pulsar's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consume => "consume",
            Self::Produce => "produce",
        }
    }

    /// Kafka's operation.
    pub fn operation(self) -> i8 {
        match self {
            Self::Consume => OPERATION_READ,
            Self::Produce => OPERATION_WRITE,
        }
    }

    fn from_pulsar(action: &str) -> Option<Self> {
        match action {
            "consume" => Some(Self::Consume),
            "produce" => Some(Self::Produce),
            _ => None,
        }
    }
}

/// What a Kafka resource name stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The grant's resource: a namespace `tenant/ns`, or a topic
    /// `persistent://tenant/ns/x`.
    pub resource: String,
    /// The namespace whose grants hold it.
    pub namespace: String,
}

/// The grant resource a Kafka resource name stands for; `None` for a name
/// that is neither a topic nor a wildcard.
pub fn target(mapper: &TopicMapper, name: &str) -> Option<Target> {
    if name == WILDCARD {
        let namespace = mapper.namespace().to_owned();
        return Some(Target { resource: namespace.clone(), namespace });
    }
    let bare = name.strip_prefix("persistent://").unwrap_or(name);
    if let Some(namespace) = bare.strip_suffix("/*") {
        return match namespace.split_once('/') {
            Some((tenant, ns)) if valid_name_segment(tenant) && valid_name_segment(ns) => {
                Some(Target { resource: namespace.to_owned(), namespace: namespace.to_owned() })
            }
            _ => None,
        };
    }
    let topic = mapper.pulsar(name).ok()?;
    let namespace = topic.strip_prefix("persistent://")?.rsplit_once('/')?.0.to_owned();
    Some(Target { resource: topic, namespace })
}

/// The Kafka name of a grant's resource: `*` for the default namespace,
/// `tenant/ns/*` for another, a topic as Kafka clients see it
/// ([`TopicMapper::kafka_name`]).
pub fn kafka_name(mapper: &TopicMapper, resource: &str) -> String {
    if resource == mapper.namespace() {
        WILDCARD.to_owned()
    } else if !resource.contains("://") {
        format!("{resource}/*")
    } else {
        mapper.kafka_name(resource)
    }
}

/// One Kafka ACL a grant holds: ALLOW `User:<role>` the operation of
/// `action` on LITERAL topic `name` from host `*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Binding {
    /// The topic's Kafka name ([`kafka_name`]).
    pub name: String,
    /// The role.
    pub role: String,
    /// The action.
    pub action: Action,
    /// The grant's resource.
    pub resource: String,
}

impl Binding {
    /// `User:<role>`.
    pub fn principal(&self) -> String {
        format!("{USER}{}", self.role)
    }
}

/// The ACLs `grants` hold, sorted by name, role and operation.
pub fn bindings(mapper: &TopicMapper, grants: &[Grant]) -> Vec<Binding> {
    let mut out: Vec<Binding> = grants
        .iter()
        .flat_map(|g| {
            let name = kafka_name(mapper, g.resource.as_str());
            g.actions.iter().filter_map(move |a| Action::from_pulsar(a.as_str())).map(move |action| Binding {
                name: name.clone(),
                role: g.role.as_str().to_owned(),
                action,
                resource: g.resource.as_str().to_owned(),
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// An ACL to create, as a grant: `actions` for `role` on `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creation {
    /// The resource.
    pub target: Target,
    /// The role.
    pub role: String,
    /// The actions (both for ALL).
    pub actions: Vec<Action>,
}

/// The grant that expresses `acl`, or why none does (INVALID_REQUEST's
/// message).
pub fn creation(mapper: &TopicMapper, acl: &AclCreation) -> Result<Creation, String> {
    check_codes(acl.resource_type, acl.resource_pattern_type, acl.operation, acl.permission_type)?;
    match acl.permission_type {
        PERMISSION_ALLOW => {}
        PERMISSION_DENY => {
            return Err("DENY ACLs cannot be expressed in Pulsar's permission model (grants only allow)".into())
        }
        _ => return Err("permission type ANY is for filters; an ACL is ALLOW".into()),
    }
    match acl.resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_ANY => return Err("resource type ANY is for filters; an ACL names a TOPIC".into()),
        3 => {
            return Err("GROUP ACLs cannot be expressed in Pulsar's permission model: a role may use the \
                        consumer groups of a namespace where it may consume"
                .into())
        }
        4 => {
            return Err("CLUSTER ACLs cannot be expressed in Pulsar's permission model: cluster rights are \
                        super-users' and tenant admins'"
                .into())
        }
        other => {
            return Err(format!(
                "{} ACLs cannot be expressed in Pulsar's permission model (grants cover topics and namespaces only)",
                resource_type_name(other)
            ))
        }
    }
    match acl.resource_pattern_type {
        PATTERN_LITERAL => {}
        PATTERN_ANY | PATTERN_MATCH => {
            return Err(format!(
                "pattern type {} is for filters; an ACL is LITERAL",
                shown(&PATTERN_TYPES, acl.resource_pattern_type)
            ))
        }
        _ => {
            return Err("PREFIXED ACLs cannot be expressed in Pulsar's permission model (grants name one topic, \
                        or every topic of a namespace as '*')"
                .into())
        }
    }
    if acl.host.as_str() != WILDCARD {
        return Err(format!(
            "ACLs for host {} cannot be expressed in Pulsar's permission model (grants apply from every host: \
             use '*')",
            acl.host.as_str()
        ));
    }
    let role = match acl.principal.as_str().strip_prefix(USER) {
        Some(role) if !role.is_empty() => role.to_owned(),
        _ => {
            return Err(format!(
                "principal {:?} cannot be expressed in Pulsar's permission model (grants name roles: use \
                 User:<role>)",
                acl.principal.as_str()
            ))
        }
    };
    let actions = match acl.operation {
        OPERATION_READ => vec![Action::Consume],
        OPERATION_WRITE => vec![Action::Produce],
        OPERATION_ALL => vec![Action::Consume, Action::Produce],
        OPERATION_ANY => return Err("operation ANY is for filters; an ACL names READ, WRITE or ALL".into()),
        OPERATION_DESCRIBE => {
            return Err("DESCRIBE alone cannot be expressed in Pulsar's permission model: describing a topic \
                        comes with READ (consume) or WRITE (produce)"
                .into())
        }
        other => {
            return Err(format!(
                "{} cannot be expressed in Pulsar's permission model: it is a tenant admin's right (grants \
                 allow READ, WRITE or ALL)",
                operation_name(other)
            ))
        }
    };
    let name = acl.resource_name.as_str();
    if name.is_empty() {
        return Err("Invalid empty resource name".into());
    }
    let target = target(mapper, name).ok_or_else(|| {
        format!("{name:?} is not a topic name (a topic, tenant/ns/topic, or '*' for every topic of the namespace)")
    })?;
    Ok(Creation { target, role, actions })
}

/// A DescribeAcls or DeleteAcls filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    resource_type: i8,
    name: Option<String>,
    pattern: i8,
    principal: Option<String>,
    host: Option<String>,
    operation: i8,
    permission: i8,
}

impl Filter {
    /// A filter of these fields, or why it is invalid (an UNKNOWN code).
    pub fn new(
        resource_type: i8,
        name: Option<&str>,
        pattern: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<Self, String> {
        check_codes(resource_type, pattern, operation, permission)?;
        Ok(Self {
            resource_type,
            name: name.map(str::to_owned),
            pattern,
            principal: principal.map(str::to_owned),
            host: host.map(str::to_owned),
            operation,
            permission,
        })
    }

    /// A DescribeAcls request's filter.
    pub fn describe(r: &DescribeAclsRequest) -> Result<Self, String> {
        Self::new(
            r.resource_type_filter,
            r.resource_name_filter.as_deref(),
            r.pattern_type_filter,
            r.principal_filter.as_deref(),
            r.host_filter.as_deref(),
            r.operation,
            r.permission_type,
        )
    }

    /// A DeleteAcls filter.
    pub fn delete(f: &DeleteAclsFilter) -> Result<Self, String> {
        Self::new(
            f.resource_type_filter,
            f.resource_name_filter.as_deref(),
            f.pattern_type_filter,
            f.principal_filter.as_deref(),
            f.host_filter.as_deref(),
            f.operation,
            f.permission_type,
        )
    }

    /// Whether the filter can match an ACL a grant holds at all (it asks
    /// for no DENY, GROUP, PREFIXED, DESCRIBE, host or principal type that
    /// cannot exist).
    fn possible(&self) -> bool {
        matches!(self.resource_type, RESOURCE_ANY | RESOURCE_TOPIC)
            && matches!(self.pattern, PATTERN_ANY | PATTERN_MATCH | PATTERN_LITERAL)
            && matches!(self.permission, PERMISSION_ANY | PERMISSION_ALLOW)
            && matches!(self.operation, OPERATION_ANY | OPERATION_ALL | OPERATION_READ | OPERATION_WRITE)
            && self.host.as_deref().is_none_or(|h| h == WILDCARD)
            && self.principal.as_deref().is_none_or(|p| p.starts_with(USER))
    }

    /// The namespaces whose grants may hold a match: the default one, or
    /// the one the filter's name is in; none when nothing can match.
    pub fn namespaces(&self, mapper: &TopicMapper) -> Vec<String> {
        if !self.possible() {
            return Vec::new();
        }
        match self.name.as_deref() {
            None => vec![mapper.namespace().to_owned()],
            Some(name) => target(mapper, name).map(|t| t.namespace).into_iter().collect(),
        }
    }

    /// Whether `binding` matches, as Kafka's `AclBindingFilter` would
    /// match it, with names compared as the resources they stand for (so
    /// `public/default/x` finds `x`), MATCH finding a topic's namespace
    /// grant (`*`) too, and ALL finding READ and WRITE (what an ALL ACL
    /// became).
    pub fn matches(&self, mapper: &TopicMapper, binding: &Binding) -> bool {
        if !self.possible() {
            return false;
        }
        let operation = match self.operation {
            OPERATION_ANY | OPERATION_ALL => true,
            op => op == binding.action.operation(),
        };
        let principal = self.principal.as_deref().is_none_or(|p| p.strip_prefix(USER) == Some(binding.role.as_str()));
        let name = match self.name.as_deref() {
            None => true,
            Some(name) => target(mapper, name).is_some_and(|t| {
                binding.resource == t.resource || (self.pattern == PATTERN_MATCH && binding.resource == t.namespace)
            }),
        };
        operation && principal && name
    }
}

/// The grants of the namespaces `filter` may match in, as the session's
/// role reads them: the error code and message of the first refusal
/// (CLUSTER_AUTHORIZATION_FAILED for a role that may not). A namespace
/// that does not exist has no grants.
pub async fn read(
    ctx: &RequestContext<'_>,
    admin: &dyn SecurityAdmin,
    filter: &Filter,
) -> Result<Vec<Grant>, (i16, String)> {
    let mut out = Vec::new();
    for namespace in filter.namespaces(&ctx.shared.topics) {
        match admin.grants(ctx.role(), &namespace).await {
            Ok(grants) => out.extend(grants),
            Err(e) if e.kind() == ErrorKind::NOT_FOUND => {}
            Err(e) => {
                refused(ctx, &e, &namespace);
                return Err(admin::host_error(&e));
            }
        }
    }
    Ok(out)
}

/// The ACLs `filter` matches among `grants`.
pub fn matching(mapper: &TopicMapper, filter: &Filter, grants: &[Grant]) -> Vec<Binding> {
    bindings(mapper, grants).into_iter().filter(|b| filter.matches(mapper, b)).collect()
}

/// Logs a refusal of the host (at info) or its failure (at warn).
pub fn refused(ctx: &RequestContext<'_>, e: &polyport_handler_api::HandlerError, resource: &str) {
    let api = kafka_protocol::messages::ApiKey::try_from(ctx.header.request_api_key).ok();
    let role = ctx.role().unwrap_or("anonymous");
    if e.kind() == ErrorKind::NOT_AUTHORIZED {
        tracing::info!(api = ?api, role, resource, reason = %e, "not authorized");
    } else {
        tracing::warn!(api = ?api, role, resource, error = %e, "grants could not be read or changed");
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn mapper() -> TopicMapper {
        TopicMapper::new("public/default".into())
    }

    fn acl(
        resource_type: i8,
        name: &str,
        pattern: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> AclCreation {
        AclCreation::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name.to_owned()))
            .with_resource_pattern_type(pattern)
            .with_principal(StrBytes::from_string(principal.to_owned()))
            .with_host(StrBytes::from_string(host.to_owned()))
            .with_operation(operation)
            .with_permission_type(permission)
    }

    fn allow(name: &str, principal: &str, operation: i8) -> AclCreation {
        acl(RESOURCE_TOPIC, name, PATTERN_LITERAL, principal, "*", operation, PERMISSION_ALLOW)
    }

    fn g(resource: &str, role: &str, actions: &[&str]) -> Grant {
        admin::grant(resource, role, &actions.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn names_stand_for_namespaces_and_topics() {
        let m = mapper();
        let t = |name| target(&m, name).map(|t| (t.resource, t.namespace));
        let ns = |r: &str, n: &str| Some((r.to_owned(), n.to_owned()));
        assert_eq!(t("*"), ns("public/default", "public/default"));
        assert_eq!(t("x"), ns("persistent://public/default/x", "public/default"));
        assert_eq!(t("acme/orders/x"), ns("persistent://acme/orders/x", "acme/orders"));
        assert_eq!(t("persistent://acme/orders/x"), ns("persistent://acme/orders/x", "acme/orders"));
        assert_eq!(t("acme/orders/*"), ns("acme/orders", "acme/orders"));
        assert_eq!(t("persistent://acme/orders/*"), ns("acme/orders", "acme/orders"));
        for bad in ["", "a b", "a/b", "/ns/*", "a/b/c/d", "acme/*", "x*"] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
        assert_eq!(kafka_name(&m, "public/default"), "*");
        assert_eq!(kafka_name(&m, "acme/orders"), "acme/orders/*");
        assert_eq!(kafka_name(&m, "persistent://public/default/x"), "x");
        assert_eq!(kafka_name(&m, "persistent://acme/orders/x"), "acme/orders/x");
    }

    #[test]
    fn grants_are_listed_as_one_acl_per_action() {
        let m = mapper();
        let grants = [
            g("public/default", "alice", &["produce", "consume"]),
            g("persistent://public/default/x", "bob", &["consume", "functions"]),
            g("persistent://acme/orders/y", "carol", &["produce"]),
            g("persistent://public/default/z", "dave", &["sinks"]),
        ];
        let listed: Vec<(String, String, i8)> =
            bindings(&m, &grants).into_iter().map(|b| (b.name.clone(), b.principal(), b.action.operation())).collect();
        let row = |n: &str, p: &str, o| (n.to_owned(), p.to_owned(), o);
        assert_eq!(
            listed,
            [
                row("*", "User:alice", OPERATION_READ),
                row("*", "User:alice", OPERATION_WRITE),
                row("acme/orders/y", "User:carol", OPERATION_WRITE),
                row("x", "User:bob", OPERATION_READ),
            ]
        );
    }

    #[test]
    fn expressible_acls_become_grants() {
        let m = mapper();
        let c = creation(&m, &allow("x", "User:alice", OPERATION_READ)).expect("expressible");
        assert_eq!(c.target.resource, "persistent://public/default/x");
        assert_eq!((c.role.as_str(), c.actions.as_slice()), ("alice", &[Action::Consume][..]));
        let c = creation(&m, &allow("*", "User:bob", OPERATION_ALL)).expect("expressible");
        assert_eq!((c.target.resource.as_str(), c.target.namespace.as_str()), ("public/default", "public/default"));
        assert_eq!(c.actions, [Action::Consume, Action::Produce]);
        let c = creation(&m, &allow("acme/orders/y", "User:carol", OPERATION_WRITE)).expect("expressible");
        assert_eq!((c.target.namespace.as_str(), c.actions.as_slice()), ("acme/orders", &[Action::Produce][..]));
    }

    #[test]
    fn what_grants_cannot_express_is_refused_with_the_reason() {
        let m = mapper();
        let refused = |a: AclCreation, reason: &str| {
            let e = creation(&m, &a).expect_err(reason);
            assert!(e.contains(reason), "{e:?} should name {reason:?}");
        };
        let user = "User:alice";
        refused(acl(RESOURCE_TOPIC, "x", PATTERN_LITERAL, user, "*", OPERATION_READ, PERMISSION_DENY), "DENY");
        refused(acl(3, "g", PATTERN_LITERAL, user, "*", OPERATION_READ, PERMISSION_ALLOW), "GROUP");
        refused(acl(4, "kafka-cluster", PATTERN_LITERAL, user, "*", 7, PERMISSION_ALLOW), "CLUSTER");
        refused(acl(5, "t", PATTERN_LITERAL, user, "*", OPERATION_WRITE, PERMISSION_ALLOW), "TRANSACTIONAL_ID");
        refused(acl(6, "t", PATTERN_LITERAL, user, "*", OPERATION_READ, PERMISSION_ALLOW), "DELEGATION_TOKEN");
        refused(acl(RESOURCE_TOPIC, "x", 4, user, "*", OPERATION_READ, PERMISSION_ALLOW), "PREFIXED");
        refused(acl(RESOURCE_TOPIC, "x", PATTERN_MATCH, user, "*", OPERATION_READ, PERMISSION_ALLOW), "MATCH");
        refused(
            acl(RESOURCE_TOPIC, "x", PATTERN_LITERAL, user, "10.0.0.1", OPERATION_READ, PERMISSION_ALLOW),
            "host 10.0.0.1",
        );
        refused(allow("x", "Group:devs", OPERATION_READ), "Group:devs");
        refused(allow("x", "User:", OPERATION_READ), "User:<role>");
        refused(allow("x", user, OPERATION_DESCRIBE), "DESCRIBE alone");
        refused(allow("x", user, 7), "ALTER");
        refused(allow("x", user, OPERATION_ANY), "ANY");
        refused(allow("", user, OPERATION_READ), "empty resource name");
        refused(allow("bad name", user, OPERATION_READ), "not a topic name");
        refused(acl(0, "x", PATTERN_LITERAL, user, "*", OPERATION_READ, PERMISSION_ALLOW), "unknown resource type 0");
        refused(acl(RESOURCE_TOPIC, "x", PATTERN_LITERAL, user, "*", 99, PERMISSION_ALLOW), "unknown operation 99");
    }

    #[allow(clippy::too_many_arguments)]
    fn filter(
        t: i8,
        name: Option<&str>,
        p: i8,
        principal: Option<&str>,
        host: Option<&str>,
        op: i8,
        perm: i8,
    ) -> Filter {
        Filter::new(t, name, p, principal, host, op, perm).expect("valid")
    }

    fn any() -> Filter {
        filter(RESOURCE_ANY, None, PATTERN_ANY, None, None, OPERATION_ANY, PERMISSION_ANY)
    }

    #[test]
    fn filters_match_as_kafkas_do() {
        let m = mapper();
        let grants = [
            g("public/default", "alice", &["consume"]),
            g("persistent://public/default/x", "bob", &["consume", "produce"]),
            g("persistent://acme/orders/y", "carol", &["produce"]),
        ];
        let names = |f: &Filter| -> Vec<String> {
            matching(&m, f, &grants)
                .into_iter()
                .map(|b| format!("{} {} {}", b.name, b.role, b.action.as_str()))
                .collect()
        };
        assert_eq!(names(&any()), ["* alice consume", "acme/orders/y carol produce", "x bob consume", "x bob produce"]);
        let named =
            |name, pattern| filter(RESOURCE_TOPIC, Some(name), pattern, None, None, OPERATION_ANY, PERMISSION_ALLOW);
        assert_eq!(names(&named("x", PATTERN_LITERAL)), ["x bob consume", "x bob produce"]);
        assert_eq!(names(&named("public/default/x", PATTERN_ANY)), ["x bob consume", "x bob produce"]);
        assert_eq!(names(&named("x", PATTERN_MATCH)), ["* alice consume", "x bob consume", "x bob produce"]);
        assert_eq!(names(&named("*", PATTERN_LITERAL)), ["* alice consume"]);
        assert_eq!(names(&named("acme/orders/y", PATTERN_LITERAL)), ["acme/orders/y carol produce"]);
        assert!(names(&named("nope", PATTERN_LITERAL)).is_empty());
        let op = |op| filter(RESOURCE_ANY, None, PATTERN_ANY, Some("User:bob"), Some("*"), op, PERMISSION_ANY);
        assert_eq!(names(&op(OPERATION_WRITE)), ["x bob produce"]);
        assert_eq!(names(&op(OPERATION_READ)), ["x bob consume"]);
        assert_eq!(names(&op(OPERATION_ALL)), ["x bob consume", "x bob produce"], "ALL finds what an ALL ACL became");
        // What cannot exist matches nothing, and reads nothing.
        let impossible = [
            filter(RESOURCE_ANY, None, PATTERN_ANY, None, None, OPERATION_ANY, PERMISSION_DENY),
            filter(3, None, PATTERN_ANY, None, None, OPERATION_ANY, PERMISSION_ANY),
            filter(RESOURCE_ANY, None, 4, None, None, OPERATION_ANY, PERMISSION_ANY),
            filter(RESOURCE_ANY, None, PATTERN_ANY, None, None, OPERATION_DESCRIBE, PERMISSION_ANY),
            filter(RESOURCE_ANY, None, PATTERN_ANY, None, Some("10.0.0.1"), OPERATION_ANY, PERMISSION_ANY),
            filter(RESOURCE_ANY, None, PATTERN_ANY, Some("Group:x"), None, OPERATION_ANY, PERMISSION_ANY),
            filter(RESOURCE_ANY, Some("bad name"), PATTERN_ANY, None, None, OPERATION_ANY, PERMISSION_ANY),
        ];
        for f in &impossible {
            assert!(names(f).is_empty(), "{f:?}");
            assert!(f.namespaces(&m).is_empty(), "{f:?}");
        }
        assert_eq!(any().namespaces(&m), ["public/default"]);
        assert_eq!(named("acme/orders/y", PATTERN_LITERAL).namespaces(&m), ["acme/orders"]);
        assert!(Filter::new(0, None, PATTERN_ANY, None, None, OPERATION_ANY, PERMISSION_ANY).is_err());
        assert!(Filter::new(RESOURCE_ANY, None, 0, None, None, OPERATION_ANY, PERMISSION_ANY).is_err());
        assert!(Filter::new(RESOURCE_ANY, None, PATTERN_ANY, None, None, 0, PERMISSION_ANY).is_err());
        assert!(Filter::new(RESOURCE_ANY, None, PATTERN_ANY, None, None, OPERATION_ANY, 9).is_err());
    }
}
