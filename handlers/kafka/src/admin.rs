//! The host's security administration as Kafka's admin APIs use it: SCRAM
//! credentials (DescribeUserScramCredentials, AlterUserScramCredentials)
//! and Pulsar's grants (DescribeAcls, CreateAcls, DeleteAcls, mapped by
//! [`crate::acls`]).
//!
//! The host decides who may: a super-user for SCRAM credentials, a
//! tenant's admin for its grants; this handler passes the session's role
//! and maps the host's answers to Kafka's error codes. [`SecurityAdmin`] is
//! the host's services, or a test's stand-in ([`Shared::security`]).
//! Nothing here logs a salt or a salted password.
//!
//! [`Shared::security`]: crate::connection::Shared::security

use std::{future::Future, pin::Pin};

use polyport_handler_api::{ErrorKind, Grant, HandlerError, Host, ScramChange, ScramUser};

use crate::{apis::RequestContext, errors};

/// A boxed future of the host's answer.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, HandlerError>> + Send + 'a>>;

/// The host's SCRAM credential and grant services
/// ([`Host::scram_users`], [`Host::alter_scram`], [`Host::grants`],
/// [`Host::set_grant`]), or a test's stand-in. `role` is the caller's
/// (`None`: anonymous).
pub trait SecurityAdmin: Send + Sync + std::fmt::Debug {
    /// The SCRAM credentials of `users` (all when empty), one result per
    /// user asked.
    fn scram_users<'a>(
        &'a self,
        role: Option<&'a str>,
        users: Vec<String>,
    ) -> Answer<'a, Vec<Result<ScramUser, HandlerError>>>;

    /// Applies SCRAM credential changes, one result per change.
    fn alter_scram<'a>(
        &'a self,
        role: Option<&'a str>,
        changes: Vec<ScramChange>,
    ) -> Answer<'a, Vec<Result<(), HandlerError>>>;

    /// Every grant of `namespace` (`tenant/ns`): its own and its topics'.
    fn grants<'a>(&'a self, role: Option<&'a str>, namespace: &'a str) -> Answer<'a, Vec<Grant>>;

    /// Sets a grant, or revokes it when it has no actions.
    fn set_grant<'a>(&'a self, role: Option<&'a str>, grant: Grant) -> Answer<'a, ()>;
}

impl SecurityAdmin for Host {
    fn scram_users<'a>(
        &'a self,
        role: Option<&'a str>,
        users: Vec<String>,
    ) -> Answer<'a, Vec<Result<ScramUser, HandlerError>>> {
        Box::pin(Host::scram_users(self, role, users))
    }

    fn alter_scram<'a>(
        &'a self,
        role: Option<&'a str>,
        changes: Vec<ScramChange>,
    ) -> Answer<'a, Vec<Result<(), HandlerError>>> {
        Box::pin(Host::alter_scram(self, role, changes))
    }

    fn grants<'a>(&'a self, role: Option<&'a str>, namespace: &'a str) -> Answer<'a, Vec<Grant>> {
        Box::pin(Host::grants(self, role, namespace))
    }

    fn set_grant<'a>(&'a self, role: Option<&'a str>, grant: Grant) -> Answer<'a, ()> {
        Box::pin(Host::set_grant(self, role, grant))
    }
}

impl RequestContext<'_> {
    /// The host's security administration; `None` without a host (the
    /// in-process benchmark).
    pub fn security_admin(&self) -> Option<&dyn SecurityAdmin> {
        self.shared.security.get().map(|admin| &**admin)
    }

    /// The session's role.
    pub fn role(&self) -> Option<&str> {
        self.session.role.as_deref()
    }
}

/// The answer when there is no host to ask.
pub fn no_host() -> (i16, String) {
    (errors::UNKNOWN_SERVER_ERROR, "no host services: credentials and grants are unavailable".to_owned())
}

/// Kafka's message for CLUSTER_AUTHORIZATION_FAILED.
pub const CLUSTER_AUTHORIZATION_MESSAGE: &str = "Cluster authorization failed.";

/// The Kafka error for a host error of the security services: the caller's
/// role may not (CLUSTER_AUTHORIZATION_FAILED), a missing resource
/// (RESOURCE_NOT_FOUND), a resource named twice (DUPLICATE_RESOURCE), a
/// refused value (INVALID_REQUEST), anything else UNKNOWN_SERVER_ERROR;
/// with the host's message, which names the rule, never a secret.
pub fn host_error(e: &HandlerError) -> (i16, String) {
    let code = match e.kind() {
        ErrorKind::NOT_AUTHORIZED => errors::CLUSTER_AUTHORIZATION_FAILED,
        ErrorKind::NOT_FOUND => errors::RESOURCE_NOT_FOUND,
        ErrorKind::ALREADY_EXISTS => errors::DUPLICATE_RESOURCE,
        ErrorKind::INVALID_ARGUMENT => errors::INVALID_REQUEST,
        _ => errors::UNKNOWN_SERVER_ERROR,
    };
    let message = match (e.message(), code) {
        ("", errors::CLUSTER_AUTHORIZATION_FAILED) => CLUSTER_AUTHORIZATION_MESSAGE.to_owned(),
        ("", _) => format!("{:?}", e.kind()),
        (message, _) => message.to_owned(),
    };
    (code, message)
}

/// The SCRAM mechanisms, as Kafka codes them on the wire
/// (`ScramMechanism`): 1 SCRAM-SHA-256, 2 SCRAM-SHA-512 (0 is UNKNOWN).
pub const SCRAM_MECHANISMS: [(i8, &str); 2] = [(1, "SCRAM-SHA-256"), (2, "SCRAM-SHA-512")];

/// The name of the SCRAM mechanism Kafka codes `code`, if it is one.
pub fn scram_mechanism_name(code: i8) -> Option<&'static str> {
    SCRAM_MECHANISMS.iter().find(|(c, _)| *c == code).map(|(_, name)| *name)
}

/// Kafka's code of the SCRAM mechanism `name` (0, UNKNOWN, for any other).
pub fn scram_mechanism_code(name: &str) -> i8 {
    SCRAM_MECHANISMS.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map_or(0, |(code, _)| *code)
}

/// A grant of `actions` to `role` on `resource`.
pub fn grant(resource: &str, role: &str, actions: &[String]) -> Grant {
    Grant { resource: resource.into(), role: role.into(), actions: actions.iter().map(|a| a.as_str().into()).collect() }
}

#[cfg(test)]
pub(crate) mod testing {
    //! [`Security`], an in-memory stand-in for the host's security
    //! administration, with the host's rules.

    use std::{
        collections::{BTreeMap, BTreeSet, HashSet},
        sync::Mutex,
    };

    use super::*;

    /// Credentials and grants as the host keeps them.
    #[derive(Debug, Default)]
    pub(crate) struct Security {
        /// Super-users: they may do anything.
        pub(crate) super_users: Vec<&'static str>,
        /// (tenant, admin role).
        pub(crate) tenant_admins: Vec<(&'static str, &'static str)>,
        /// The namespaces that exist.
        pub(crate) namespaces: Vec<&'static str>,
        /// user → mechanism → (iterations, salt, salted password).
        #[allow(clippy::type_complexity)]
        pub(crate) scram: Mutex<BTreeMap<String, BTreeMap<String, (u32, Vec<u8>, Vec<u8>)>>>,
        /// (resource, role) → actions.
        pub(crate) grants: Mutex<BTreeMap<(String, String), BTreeSet<String>>>,
        /// How many times each service was called, by name.
        pub(crate) calls: Mutex<Vec<&'static str>>,
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    impl Security {
        fn is_super(&self, role: Option<&str>) -> bool {
            role.is_some_and(|r| self.super_users.contains(&r))
        }

        fn administers(&self, role: Option<&str>, tenant: &str) -> bool {
            self.is_super(role) || self.tenant_admins.iter().any(|(t, r)| *t == tenant && Some(*r) == role)
        }

        /// Sets a grant directly.
        pub(crate) fn put(&self, resource: &str, role: &str, actions: &[&str]) {
            let actions = actions.iter().map(|a| (*a).to_owned()).collect();
            lock(&self.grants).insert((resource.to_owned(), role.to_owned()), actions);
        }

        /// The grants held, as (resource, role, actions).
        pub(crate) fn held(&self) -> Vec<(String, String, Vec<String>)> {
            lock(&self.grants)
                .iter()
                .map(|((res, r), a)| (res.clone(), r.clone(), a.iter().cloned().collect()))
                .collect()
        }

        /// The SCRAM credentials held, as `user mechanism iterations`.
        pub(crate) fn scram_users_held(&self) -> Vec<String> {
            lock(&self.scram)
                .iter()
                .flat_map(|(user, all)| all.iter().map(move |(m, (i, _, _))| format!("{user} {m} {i}")))
                .collect()
        }

        /// The calls made so far.
        pub(crate) fn calls(&self) -> Vec<&'static str> {
            lock(&self.calls).clone()
        }

        fn call(&self, name: &'static str) {
            lock(&self.calls).push(name);
        }
    }

    fn denied(what: &str) -> HandlerError {
        HandlerError::new(ErrorKind::NOT_AUTHORIZED, format!("only super-users may {what}"))
    }

    fn namespace_of(resource: &str) -> String {
        match resource.strip_prefix("persistent://") {
            Some(topic) => topic.rsplit_once('/').map_or(topic, |(ns, _)| ns).to_owned(),
            None => resource.to_owned(),
        }
    }

    impl SecurityAdmin for Security {
        fn scram_users<'a>(
            &'a self,
            role: Option<&'a str>,
            users: Vec<String>,
        ) -> Answer<'a, Vec<Result<ScramUser, HandlerError>>> {
            self.call("scram_users");
            let answer = if self.is_super(role) {
                let scram = lock(&self.scram);
                let users = if users.is_empty() { scram.keys().cloned().collect() } else { users };
                Ok(users
                    .into_iter()
                    .map(|user| match scram.get(&user) {
                        Some(all) if !all.is_empty() => Ok(ScramUser {
                            user: user.as_str().into(),
                            credentials: all.iter().map(|(m, (i, _, _))| (m.as_str().into(), *i).into()).collect(),
                        }),
                        _ => {
                            Err(HandlerError::new(ErrorKind::NOT_FOUND, format!("user {user} has no SCRAM credential")))
                        }
                    })
                    .collect())
            } else {
                Err(denied("describe SCRAM credentials"))
            };
            Box::pin(std::future::ready(answer))
        }

        fn alter_scram<'a>(
            &'a self,
            role: Option<&'a str>,
            changes: Vec<ScramChange>,
        ) -> Answer<'a, Vec<Result<(), HandlerError>>> {
            self.call("alter_scram");
            let answer = if self.is_super(role) {
                let mut scram = lock(&self.scram);
                let mut seen = HashSet::new();
                Ok(changes
                    .into_iter()
                    .map(|c| {
                        let (user, mechanism) = (c.user.as_str(), c.mechanism.as_str());
                        if scram_mechanism_code(mechanism) == 0 {
                            return Err(HandlerError::new(ErrorKind::UNSUPPORTED, "unknown SCRAM mechanism"));
                        }
                        if !seen.insert((user.to_owned(), mechanism.to_owned())) {
                            return Err(HandlerError::new(ErrorKind::ALREADY_EXISTS, "twice in one request"));
                        }
                        match c.upsert.into_option() {
                            Some(u) if !(4096..=16384).contains(&u.iterations) || u.salt.is_empty() => {
                                Err(HandlerError::new(ErrorKind::INVALID_ARGUMENT, "unacceptable"))
                            }
                            Some(u) => {
                                let credential = (u.iterations, u.salt.to_vec(), u.salted_password.to_vec());
                                scram.entry(user.to_owned()).or_default().insert(mechanism.to_owned(), credential);
                                Ok(())
                            }
                            None => match scram.get_mut(user).and_then(|all| all.remove(mechanism)) {
                                Some(_) => Ok(()),
                                None => Err(HandlerError::new(
                                    ErrorKind::NOT_FOUND,
                                    format!("user {user} has no {mechanism} credential"),
                                )),
                            },
                        }
                    })
                    .collect())
            } else {
                Err(denied("alter SCRAM credentials"))
            };
            Box::pin(std::future::ready(answer))
        }

        fn grants<'a>(&'a self, role: Option<&'a str>, namespace: &'a str) -> Answer<'a, Vec<Grant>> {
            self.call("grants");
            let tenant = namespace.split('/').next().unwrap_or_default();
            let answer = if !self.administers(role, tenant) {
                Err(HandlerError::new(ErrorKind::NOT_AUTHORIZED, format!("only tenant {tenant}'s admins may")))
            } else if !self.namespaces.contains(&namespace) {
                Err(HandlerError::new(ErrorKind::NOT_FOUND, format!("namespace {namespace} does not exist")))
            } else {
                Ok(lock(&self.grants)
                    .iter()
                    .filter(|((resource, _), _)| namespace_of(resource) == namespace)
                    .map(|((resource, r), actions)| grant(resource, r, &actions.iter().cloned().collect::<Vec<_>>()))
                    .collect())
            };
            Box::pin(std::future::ready(answer))
        }

        fn set_grant<'a>(&'a self, role: Option<&'a str>, grant: Grant) -> Answer<'a, ()> {
            self.call("set_grant");
            let namespace = namespace_of(grant.resource.as_str());
            let tenant = namespace.split('/').next().unwrap_or_default().to_owned();
            let known = ["produce", "consume", "functions", "sources", "sinks", "packages"];
            let answer = if !self.administers(role, &tenant) {
                Err(HandlerError::new(ErrorKind::NOT_AUTHORIZED, format!("only tenant {tenant}'s admins may")))
            } else if !self.namespaces.contains(&namespace.as_str()) {
                Err(HandlerError::new(ErrorKind::NOT_FOUND, format!("namespace {namespace} does not exist")))
            } else if grant.actions.iter().any(|a| !known.contains(&a.as_str())) {
                Err(HandlerError::new(ErrorKind::INVALID_ARGUMENT, "unknown action"))
            } else {
                let key = (grant.resource.as_str().to_owned(), grant.role.as_str().to_owned());
                let mut grants = lock(&self.grants);
                if grant.actions.is_empty() {
                    grants.remove(&key);
                } else {
                    grants.insert(key, grant.actions.iter().map(|a| a.as_str().to_owned()).collect());
                }
                Ok(())
            };
            Box::pin(std::future::ready(answer))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_map_to_kafkas_codes_and_back() {
        assert_eq!(scram_mechanism_name(1), Some("SCRAM-SHA-256"));
        assert_eq!(scram_mechanism_name(2), Some("SCRAM-SHA-512"));
        for unknown in [0, 3, -1, i8::MAX] {
            assert_eq!(scram_mechanism_name(unknown), None, "{unknown}");
        }
        assert_eq!(scram_mechanism_code("SCRAM-SHA-256"), 1);
        assert_eq!(scram_mechanism_code("scram-sha-512"), 2);
        assert_eq!(scram_mechanism_code("PLAIN"), 0);
    }

    #[test]
    fn host_errors_map_to_kafkas() {
        let e = |kind, message: &str| host_error(&HandlerError::new(kind, message));
        assert_eq!(e(ErrorKind::NOT_AUTHORIZED, ""), (31, CLUSTER_AUTHORIZATION_MESSAGE.to_owned()));
        assert_eq!(e(ErrorKind::NOT_AUTHORIZED, "only super-users may").0, 31);
        assert_eq!(e(ErrorKind::NOT_FOUND, "no such namespace"), (91, "no such namespace".to_owned()));
        assert_eq!(e(ErrorKind::ALREADY_EXISTS, "twice").0, 92);
        assert_eq!(e(ErrorKind::INVALID_ARGUMENT, "unknown action").0, 42);
        assert_eq!(e(ErrorKind::STORAGE, "store down").0, -1);
    }
}

/// The five admin APIs through `dispatch`, against [`testing::Security`].
#[cfg(test)]
mod requests {
    use std::sync::Arc;

    use futures_util::FutureExt as _;
    use kafka_protocol::{
        messages::*,
        protocol::{Decodable, Encodable, HeaderVersion, StrBytes},
    };

    use super::testing::Security;
    use crate::{acls, connection::Shared, errors, session::Session};

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    fn shared(security: &Arc<Security>) -> Arc<Shared> {
        let shared = Shared::for_tests();
        let admin: Arc<dyn super::SecurityAdmin> = Arc::clone(security) as _;
        shared.security.set(admin).expect("unset");
        Arc::new(shared)
    }

    fn security() -> Arc<Security> {
        Arc::new(Security {
            super_users: vec!["root"],
            tenant_admins: vec![("public", "admin")],
            namespaces: vec!["public/default", "acme/orders"],
            ..Security::default()
        })
    }

    fn user(role: &str) -> Session {
        Session::from_sasl(role.into(), "public/default".into())
    }

    fn send<Req: Encodable + HeaderVersion, Resp: Decodable>(
        shared: &Arc<Shared>,
        session: &Session,
        key: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        let frame = crate::apis::frames::request(key, version, body);
        let listener = crate::listeners::KafkaListener {
            name: "SASL_PLAINTEXT".into(),
            bind: "0.0.0.0:9092".into(),
            advertised_host: "h".into(),
            advertised_port: 9092,
            security: crate::listeners::SecurityProtocol::Plaintext,
        };
        let out = crate::apis::dispatch(
            key,
            version,
            frame,
            Arc::clone(shared),
            Arc::new(listener),
            "/127.0.0.1".into(),
            Arc::new(session.clone()),
            None,
        )
        .now_or_never()
        .expect("the stand-in answers at once")
        .expect("dispatch")
        .expect("a response");
        crate::apis::frames::response(&out, key, version)
    }

    fn upsert(
        name: &str,
        mechanism: i8,
        iterations: i32,
    ) -> alter_user_scram_credentials_request::ScramCredentialUpsertion {
        alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
            .with_name(s(name))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(bytes::Bytes::from_static(b"salt"))
            .with_salted_password(bytes::Bytes::from_static(b"salted"))
    }

    fn deletion(name: &str, mechanism: i8) -> alter_user_scram_credentials_request::ScramCredentialDeletion {
        alter_user_scram_credentials_request::ScramCredentialDeletion::default()
            .with_name(s(name))
            .with_mechanism(mechanism)
    }

    fn alter_codes(r: &AlterUserScramCredentialsResponse) -> Vec<(String, i16)> {
        r.results.iter().map(|r| (r.user.as_str().to_owned(), r.error_code)).collect()
    }

    fn describe(users: Option<Vec<&str>>) -> DescribeUserScramCredentialsRequest {
        DescribeUserScramCredentialsRequest::default().with_users(users.map(|us| {
            us.into_iter()
                .map(|u| describe_user_scram_credentials_request::UserName::default().with_name(s(u)))
                .collect()
        }))
    }

    #[test]
    fn scram_credentials_are_altered_and_described_as_kafka_answers() {
        let security = security();
        let shared = shared(&security);
        let root = user("root");
        let request = AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![deletion("erin", 1)])
            .with_upsertions(vec![
                upsert("alice", 1, 4096),
                upsert("alice", 2, 8192),
                upsert("bob", 1, 100),
                upsert("bob", 2, 4096),
                upsert("carol", 0, 4096),
                upsert("", 1, 4096),
                upsert("dave", 1, 4096),
                upsert("dave", 1, 5000),
                upsert("frank", 2, 20000),
                upsert("gina", 2, 4096).with_salt(bytes::Bytes::new()),
            ]);
        let r: AlterUserScramCredentialsResponse = send(&shared, &root, ApiKey::AlterUserScramCredentials, 0, &request);
        let row = |u: &str, c| (u.to_owned(), c);
        assert_eq!(
            alter_codes(&r),
            [
                row("erin", errors::RESOURCE_NOT_FOUND),
                row("alice", 0),
                row("bob", errors::UNACCEPTABLE_CREDENTIAL),
                row("carol", errors::UNSUPPORTED_SASL_MECHANISM),
                row("", errors::UNACCEPTABLE_CREDENTIAL),
                row("dave", errors::DUPLICATE_RESOURCE),
                row("frank", errors::UNACCEPTABLE_CREDENTIAL),
                row("gina", errors::UNACCEPTABLE_CREDENTIAL),
            ]
        );
        let message = |u: &str| {
            r.results.iter().find(|r| r.user.as_str() == u).and_then(|r| r.error_message.as_deref()).map(str::to_owned)
        };
        assert_eq!(message("bob").as_deref(), Some("Too few iterations"));
        assert_eq!(message("frank").as_deref(), Some("Too many iterations"));
        assert_eq!(message("carol").as_deref(), Some("Unknown SCRAM mechanism"));
        assert_eq!(message("").as_deref(), Some("Username must not be empty"));
        // A refused user's other changes are not applied: bob has none.
        let stored: Vec<String> = security.scram_users_held();
        assert_eq!(stored, ["alice SCRAM-SHA-256 4096", "alice SCRAM-SHA-512 8192"]);

        let r: DescribeUserScramCredentialsResponse = send(
            &shared,
            &root,
            ApiKey::DescribeUserScramCredentials,
            0,
            &describe(Some(vec!["alice", "zed", "bob", "bob", ""])),
        );
        assert_eq!(r.error_code, 0);
        type Row = (String, i16, Vec<(i8, i32)>);
        let rows: Vec<Row> = r
            .results
            .iter()
            .map(|r| {
                (
                    r.user.as_str().to_owned(),
                    r.error_code,
                    r.credential_infos.iter().map(|c| (c.mechanism, c.iterations)).collect(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("alice".to_owned(), 0, vec![(1, 4096), (2, 8192)]),
                ("zed".to_owned(), errors::RESOURCE_NOT_FOUND, vec![]),
                ("bob".to_owned(), errors::DUPLICATE_RESOURCE, vec![]),
                (String::new(), errors::RESOURCE_NOT_FOUND, vec![]),
            ]
        );
        assert!(r.results[2].error_message.as_deref().is_some_and(|m| m.contains("twice")));
        for everyone in [None, Some(vec![])] {
            let r: DescribeUserScramCredentialsResponse =
                send(&shared, &root, ApiKey::DescribeUserScramCredentials, 0, &describe(everyone));
            assert_eq!(r.results.iter().map(|r| r.user.as_str()).collect::<Vec<_>>(), ["alice"]);
        }

        // Deleting one mechanism keeps the other.
        let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion("alice", 2)]);
        let r: AlterUserScramCredentialsResponse = send(&shared, &root, ApiKey::AlterUserScramCredentials, 0, &request);
        assert_eq!(alter_codes(&r), [row("alice", 0)]);
        assert_eq!(security.scram_users_held(), ["alice SCRAM-SHA-256 4096"]);
    }

    #[test]
    fn scram_credentials_need_a_super_user() {
        let security = security();
        let shared = shared(&security);
        let mallory = user("mallory");
        // Refused as a whole, even the changes refused on their own, as Kafka does.
        let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            upsert("zoe", 1, 4096),
            upsert("bob", 0, 4096),
            upsert("amy", 1, 1),
        ]);
        let r: AlterUserScramCredentialsResponse =
            send(&shared, &mallory, ApiKey::AlterUserScramCredentials, 0, &request);
        let denied = errors::CLUSTER_AUTHORIZATION_FAILED;
        let row = |u: &str| (u.to_owned(), denied);
        assert_eq!(alter_codes(&r), [row("amy"), row("bob"), row("zoe")], "sorted, as Kafka's error response");
        let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsert("amy", 1, 1)]);
        let r: AlterUserScramCredentialsResponse =
            send(&shared, &mallory, ApiKey::AlterUserScramCredentials, 0, &request);
        assert_eq!(alter_codes(&r), [row("amy")], "the host is asked with nothing left to change");
        assert!(security.scram_users_held().is_empty());

        let r: DescribeUserScramCredentialsResponse =
            send(&shared, &mallory, ApiKey::DescribeUserScramCredentials, 0, &describe(Some(vec!["alice", "bob"])));
        assert_eq!(r.error_code, denied);
        assert!(r.error_message.is_some());
        assert_eq!(
            r.results.iter().map(|r| (r.user.as_str(), r.error_code)).collect::<Vec<_>>(),
            [("alice", denied), ("bob", denied)]
        );
        let r: DescribeUserScramCredentialsResponse =
            send(&shared, &mallory, ApiKey::DescribeUserScramCredentials, 0, &describe(None));
        assert_eq!((r.error_code, r.results.len()), (denied, 0));
    }

    fn creation(name: &str, principal: &str, operation: i8) -> create_acls_request::AclCreation {
        create_acls_request::AclCreation::default()
            .with_resource_type(acls::RESOURCE_TOPIC)
            .with_resource_name(s(name))
            .with_resource_pattern_type(acls::PATTERN_LITERAL)
            .with_principal(s(principal))
            .with_host(s("*"))
            .with_operation(operation)
            .with_permission_type(acls::PERMISSION_ALLOW)
    }

    /// Matches every ACL (null filters: kafka-protocol's defaults are "").
    fn describe_all() -> DescribeAclsRequest {
        DescribeAclsRequest::default()
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_resource_type_filter(acls::RESOURCE_ANY)
            .with_pattern_type_filter(acls::PATTERN_ANY)
            .with_operation(acls::OPERATION_ANY)
            .with_permission_type(acls::PERMISSION_ANY)
    }

    /// (resource name, principal, operation) of each ACL listed.
    fn listed(r: &DescribeAclsResponse) -> Vec<(String, String, i8)> {
        r.resources
            .iter()
            .flat_map(|res| {
                assert_eq!((res.resource_type, res.pattern_type), (acls::RESOURCE_TOPIC, acls::PATTERN_LITERAL));
                res.acls.iter().map(move |a| {
                    assert_eq!((a.host.as_str(), a.permission_type), ("*", acls::PERMISSION_ALLOW));
                    (res.resource_name.as_str().to_owned(), a.principal.as_str().to_owned(), a.operation)
                })
            })
            .collect()
    }

    fn acl(name: &str, principal: &str, operation: i8) -> (String, String, i8) {
        (name.to_owned(), principal.to_owned(), operation)
    }

    #[test]
    fn acls_are_created_listed_and_deleted_as_grants() {
        let security = security();
        security.put("persistent://public/default/x", "alice", &["functions"]);
        let shared = shared(&security);
        let (admin, root, mallory) = (user("admin"), user("root"), user("mallory"));
        let (read, write, all) = (acls::OPERATION_READ, acls::OPERATION_WRITE, acls::OPERATION_ALL);
        for version in 1..=3 {
            let request = CreateAclsRequest::default().with_creations(vec![
                creation("x", "User:alice", read),
                creation("*", "User:bob", all),
                creation("acme/orders/y", "User:carol", write),
                creation("x", "User:alice", read).with_permission_type(acls::PERMISSION_DENY),
                creation("x", "User:alice", acls::OPERATION_DESCRIBE),
                creation("x", "User:alice", read).with_resource_pattern_type(4),
                creation("g", "User:alice", read).with_resource_type(3),
                creation("nope/ns/z", "User:alice", read),
            ]);
            let r: CreateAclsResponse = send(&shared, &admin, ApiKey::CreateAcls, version, &request);
            let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
            let (invalid, denied) = (errors::INVALID_REQUEST, errors::CLUSTER_AUTHORIZATION_FAILED);
            assert_eq!(codes, [0, 0, denied, invalid, invalid, invalid, invalid, denied], "v{version}");
            assert!(r.results[3].error_message.as_deref().is_some_and(|m| m.contains("DENY ACLs cannot be expressed")));
            assert!(r.results[4].error_message.as_deref().is_some_and(|m| m.contains("DESCRIBE alone")));
        }
        // The grant alice held keeps its other action.
        let held = security.held();
        let grant = |res: &str, role: &str, actions: &[&str]| {
            (res.to_owned(), role.to_owned(), actions.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(
            held,
            [
                grant("persistent://public/default/x", "alice", &["consume", "functions"]),
                grant("public/default", "bob", &["consume", "produce"]),
            ]
        );
        // A super-user may grant in any tenant; a missing namespace is RESOURCE_NOT_FOUND.
        let request = CreateAclsRequest::default().with_creations(vec![
            creation("acme/orders/y", "User:carol", write),
            creation("nope/ns/z", "User:alice", read),
        ]);
        let r: CreateAclsResponse = send(&shared, &root, ApiKey::CreateAcls, 3, &request);
        assert_eq!(r.results.iter().map(|r| r.error_code).collect::<Vec<_>>(), [0, errors::RESOURCE_NOT_FOUND]);

        let r: DescribeAclsResponse = send(&shared, &admin, ApiKey::DescribeAcls, 3, &describe_all());
        assert_eq!(r.error_code, 0);
        assert_eq!(
            listed(&r),
            [acl("*", "User:bob", read), acl("*", "User:bob", write), acl("x", "User:alice", read)],
            "the default namespace's grants"
        );
        let named = describe_all().with_resource_name_filter(Some(s("acme/orders/y")));
        let r: DescribeAclsResponse = send(&shared, &root, ApiKey::DescribeAcls, 1, &named);
        assert_eq!(listed(&r), [acl("acme/orders/y", "User:carol", write)]);
        let matching =
            describe_all().with_resource_name_filter(Some(s("x"))).with_pattern_type_filter(acls::PATTERN_MATCH);
        let r: DescribeAclsResponse = send(&shared, &admin, ApiKey::DescribeAcls, 2, &matching);
        assert_eq!(listed(&r), [acl("*", "User:bob", read), acl("*", "User:bob", write), acl("x", "User:alice", read)]);
        let r: DescribeAclsResponse = send(&shared, &mallory, ApiKey::DescribeAcls, 3, &describe_all());
        assert_eq!((r.error_code, r.resources.len()), (errors::CLUSTER_AUTHORIZATION_FAILED, 0));
        assert!(r.error_message.is_some());
        // Asking only for what cannot exist: empty, without asking the host.
        let calls = security.calls().len();
        let deny = describe_all().with_permission_type(acls::PERMISSION_DENY);
        let r: DescribeAclsResponse = send(&shared, &mallory, ApiKey::DescribeAcls, 3, &deny);
        assert_eq!((r.error_code, r.resources.len()), (0, 0));
        assert_eq!(security.calls().len(), calls);
        let unknown = describe_all().with_operation(0);
        let r: DescribeAclsResponse = send(&shared, &admin, ApiKey::DescribeAcls, 3, &unknown);
        assert_eq!(r.error_code, errors::INVALID_REQUEST);

        let filter = |name: Option<&str>, principal: Option<&str>, operation| {
            delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(acls::RESOURCE_TOPIC)
                .with_resource_name_filter(name.map(s))
                .with_pattern_type_filter(acls::PATTERN_LITERAL)
                .with_principal_filter(principal.map(s))
                .with_host_filter(None)
                .with_operation(operation)
                .with_permission_type(acls::PERMISSION_ALLOW)
        };
        let request = DeleteAclsRequest::default().with_filters(vec![filter(None, None, acls::OPERATION_ANY)]);
        let r: DeleteAclsResponse = send(&shared, &mallory, ApiKey::DeleteAcls, 3, &request);
        assert_eq!(r.filter_results[0].error_code, errors::CLUSTER_AUTHORIZATION_FAILED);
        let request = DeleteAclsRequest::default().with_filters(vec![
            filter(Some("x"), Some("User:alice"), acls::OPERATION_ANY),
            filter(Some("*"), None, all),
            filter(Some("x"), None, acls::OPERATION_ANY),
            filter(None, None, 0),
        ]);
        let r: DeleteAclsResponse = send(&shared, &admin, ApiKey::DeleteAcls, 2, &request);
        let matched = |i: usize| -> Vec<(String, String, i8, i16)> {
            r.filter_results[i]
                .matching_acls
                .iter()
                .map(|a| {
                    (a.resource_name.as_str().to_owned(), a.principal.as_str().to_owned(), a.operation, a.error_code)
                })
                .collect()
        };
        let m = |n: &str, p: &str, o| (n.to_owned(), p.to_owned(), o, 0);
        assert_eq!(matched(0), [m("x", "User:alice", read)]);
        assert_eq!(matched(1), [m("*", "User:bob", read), m("*", "User:bob", write)]);
        assert!(matched(2).is_empty(), "what the filters before removed is gone");
        assert_eq!(r.filter_results[3].error_code, errors::INVALID_REQUEST);
        assert_eq!(
            security.held(),
            [
                grant("persistent://acme/orders/y", "carol", &["produce"]),
                grant("persistent://public/default/x", "alice", &["functions"]),
            ],
            "bob's grant is revoked; alice keeps her other action"
        );
    }
}
