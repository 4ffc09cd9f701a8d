//! The authentication service ([`FfiHost::authenticate`],
//! [`FfiHost::sasl_server`]): handlers' credentials checked by the host's
//! [`Authenticator`], the one Pulsar's connections use.
//!
//! [`FfiHost::authenticate`]: polyport_handler_api::ffi::FfiHost::authenticate
//! [`FfiHost::sasl_server`]: polyport_handler_api::ffi::FfiHost::sasl_server

use std::sync::Arc;

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RString, RVec, Tuple2},
};
use async_ffi::{FfiFuture, FutureExt as _};
use polyport_handler_api::{
    security::{
        AuthenticationInfo, FfiSaslOutcome, FfiSaslServer, FfiSaslServerBox, FfiSaslServer_TO, FfiSaslStep, Grant,
        ScramChange, ScramUser,
    },
    ErrorKind, HandlerError,
};

use crate::security::{sasl, AuthError, Authenticator};

fn handler_error(e: &AuthError) -> HandlerError {
    HandlerError::new(ErrorKind::AUTHENTICATION, e.to_string())
}

/// What handlers are told of the providers.
pub fn info(authenticator: &Authenticator) -> AuthenticationInfo {
    AuthenticationInfo {
        enabled: authenticator.enabled(),
        sasl_mechanisms: authenticator.sasl_mechanisms().into_iter().map(RString::from).collect(),
        methods: authenticator.methods().into_iter().map(RString::from).collect(),
    }
}

/// One-shot credentials.
pub fn authenticate(
    authenticator: &Authenticator,
    method: &str,
    data: &[u8],
) -> FfiFuture<RResult<RString, HandlerError>> {
    // Verifying a signature takes microseconds: no thread hop.
    let result = authenticator.authenticate(method, data).map(RString::from).map_err(|e| handler_error(&e));
    std::future::ready(RResult::from(result)).into_ffi()
}

/// A SASL exchange for a handler.
pub fn sasl_server(
    runtime: &tokio::runtime::Handle,
    authenticator: &Arc<Authenticator>,
    mechanism: &str,
) -> RResult<FfiSaslServerBox, HandlerError> {
    match authenticator.sasl(mechanism) {
        Ok(session) => RResult::ROk(FfiSaslServer_TO::from_value(
            SaslServer {
                runtime: runtime.clone(),
                authenticator: Arc::clone(authenticator),
                session: Arc::new(tokio::sync::Mutex::new(session)),
            },
            TD_Opaque,
        )),
        Err(e) => RResult::RErr(handler_error(&e)),
    }
}

struct SaslServer {
    runtime: tokio::runtime::Handle,
    authenticator: Arc<Authenticator>,
    /// Held across a step's awaits (a SCRAM step reads the store).
    session: Arc<tokio::sync::Mutex<sasl::Session>>,
}

impl FfiSaslServer for SaslServer {
    fn step(&self, response: RVec<u8>) -> FfiFuture<RResult<FfiSaslStep, HandlerError>> {
        let (authenticator, session) = (Arc::clone(&self.authenticator), Arc::clone(&self.session));
        super::on_runtime(&self.runtime, move || async move {
            let mut session = session.lock().await;
            let step = authenticator.sasl_step(&mut session, &response).await.map_err(|e| handler_error(&e))?;
            Ok(match step {
                sasl::Step::Challenge(challenge) => {
                    FfiSaslStep { challenge: challenge.into(), outcome: ROption::RNone }
                }
                sasl::Step::Done { role, username, final_message } => FfiSaslStep {
                    challenge: final_message.into(),
                    outcome: ROption::RSome(FfiSaslOutcome { role: role.into(), username: username.into() }),
                },
            })
        })
    }
}

/// Whether `role` may do `operation` on `target`: a topic, or `tenant/ns`.
pub fn authorize(
    runtime: &tokio::runtime::Handle,
    authorizer: &Arc<crate::security::authz::Authorizer>,
    role: &str,
    operation: polyport_handler_api::storage::Operation,
    target: &str,
) -> FfiFuture<RResult<bool, HandlerError>> {
    use crate::security::authz::Action;
    use polyport_handler_api::storage::Operation;
    let action = match operation {
        Operation::Lookup => Action::Lookup,
        Operation::Produce => Action::Produce,
        Operation::Consume => Action::Consume,
        Operation::Admin => Action::Admin,
    };
    let authorizer = Arc::clone(authorizer);
    let role = Some(role.to_owned()).filter(|r| !r.is_empty());
    let target = target.to_owned();
    super::on_runtime(runtime, move || async move {
        let role = role.as_deref();
        let namespace = !target.contains("://") && target.matches('/').count() == 1;
        let allowed = if namespace {
            authorizer.allows_namespace(role, action, &target).await
        } else {
            let name = crate::topics::TopicName::parse(&target)
                .map_err(|e| HandlerError::new(ErrorKind::INVALID_ARGUMENT, e.to_string()))?;
            authorizer.allows(role, action, &name).await
        };
        allowed.map_err(|e| HandlerError::new(ErrorKind::STORAGE, e.to_string()))
    })
}

fn not_authorized(what: &str) -> HandlerError {
    HandlerError::new(ErrorKind::NOT_AUTHORIZED, format!("only super-users may {what}"))
}

fn storage_error(e: &crate::topics::TopicError) -> HandlerError {
    use crate::topics::TopicError;
    let kind = match e {
        TopicError::NotFound(_) | TopicError::NamespaceNotFound(_) => ErrorKind::NOT_FOUND,
        TopicError::AlreadyExists(_) => ErrorKind::ALREADY_EXISTS,
        TopicError::Invalid(_) | TopicError::InvalidName(_) => ErrorKind::INVALID_ARGUMENT,
        _ => ErrorKind::STORAGE,
    };
    HandlerError::new(kind, e.to_string())
}

/// Who the host's services answer for.
pub struct Admin {
    /// The runtime the futures run on.
    pub runtime: tokio::runtime::Handle,
    /// The store.
    pub topics: Arc<crate::topics::Topics>,
    /// Who may.
    pub authorizer: Arc<crate::security::authz::Authorizer>,
}

fn role_of(role: &str) -> Option<String> {
    Some(role.to_owned()).filter(|r| !r.is_empty())
}

/// SCRAM users and their mechanisms.
pub fn scram_users(
    admin: &Admin,
    role: &str,
    users: Vec<String>,
) -> FfiFuture<RResult<RVec<RResult<ScramUser, HandlerError>>, HandlerError>> {
    let (topics, authorizer, role) = (Arc::clone(&admin.topics), Arc::clone(&admin.authorizer), role_of(role));
    super::on_runtime(&admin.runtime, move || async move {
        if authorizer.enabled() && !authorizer.is_super_user(role.as_deref()) {
            return Err(not_authorized("describe SCRAM credentials"));
        }
        let users = if users.is_empty() { topics.scram_users().await.map_err(|e| storage_error(&e))? } else { users };
        let mut out = RVec::new();
        for user in users {
            let described = match topics.scram_credentials(&user).await {
                Ok(all) if all.is_empty() => {
                    Err(HandlerError::new(ErrorKind::NOT_FOUND, format!("user {user} has no SCRAM credential")))
                }
                Ok(all) => Ok(ScramUser {
                    user: user.as_str().into(),
                    credentials: all.iter().map(|(m, c)| Tuple2(RString::from(m.as_str()), c.iterations)).collect(),
                }),
                Err(e) => Err(storage_error(&e)),
            };
            out.push(described.into());
        }
        Ok(out)
    })
}

/// Sets and deletes SCRAM credentials.
pub fn alter_scram(
    admin: &Admin,
    role: &str,
    changes: Vec<ScramChange>,
) -> FfiFuture<RResult<RVec<RResult<(), HandlerError>>, HandlerError>> {
    use crate::security::scram::{Credential, Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};
    let (topics, authorizer, role) = (Arc::clone(&admin.topics), Arc::clone(&admin.authorizer), role_of(role));
    super::on_runtime(&admin.runtime, move || async move {
        if authorizer.enabled() && !authorizer.is_super_user(role.as_deref()) {
            return Err(not_authorized("alter SCRAM credentials"));
        }
        let mut seen = std::collections::HashSet::new();
        let mut out = RVec::new();
        for change in changes {
            let (user, mechanism) = (change.user.as_str(), change.mechanism.as_str());
            let result = (|| {
                let m = Mechanism::from_name(mechanism).ok_or_else(|| {
                    HandlerError::new(ErrorKind::UNSUPPORTED, format!("unknown SCRAM mechanism {mechanism:?}"))
                })?;
                if !seen.insert((user.to_owned(), m.name())) {
                    return Err(HandlerError::new(
                        ErrorKind::ALREADY_EXISTS,
                        format!("user {user} and {} appear twice in one request", m.name()),
                    ));
                }
                if user.is_empty() {
                    return Err(HandlerError::new(ErrorKind::INVALID_ARGUMENT, "a SCRAM user needs a name"));
                }
                let credential = match change.upsert.as_ref().into_option() {
                    None => None,
                    Some(u) if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&u.iterations) => {
                        return Err(HandlerError::new(
                            ErrorKind::INVALID_ARGUMENT,
                            format!("iterations must be {MIN_ITERATIONS} to {MAX_ITERATIONS} (got {})", u.iterations),
                        ))
                    }
                    Some(u) if u.salt.is_empty() || u.salted_password.is_empty() => {
                        return Err(HandlerError::new(ErrorKind::INVALID_ARGUMENT, "empty salt or salted password"))
                    }
                    Some(u) => Some(Credential::from_salted(m, u.salt.to_vec(), &u.salted_password, u.iterations)),
                };
                Ok((m, credential))
            })();
            let result = match result {
                Ok((m, credential)) => {
                    topics.set_scram_credential(user, m.name(), credential).await.map_err(|e| storage_error(&e))
                }
                Err(e) => Err(e),
            };
            out.push(result.into());
        }
        Ok(out)
    })
}

/// The grants of a namespace, for its tenant's admins.
pub fn grants(admin: &Admin, role: &str, namespace: &str) -> FfiFuture<RResult<RVec<Grant>, HandlerError>> {
    let (topics, authorizer, role) = (Arc::clone(&admin.topics), Arc::clone(&admin.authorizer), role_of(role));
    let namespace = namespace.to_owned();
    super::on_runtime(&admin.runtime, move || async move {
        let tenant = namespace.split('/').next().unwrap_or_default().to_owned();
        if !authorizer.is_tenant_admin(role.as_deref(), &tenant).await.map_err(|e| storage_error(&e))? {
            return Err(HandlerError::new(ErrorKind::NOT_AUTHORIZED, format!("only tenant {tenant}'s admins may")));
        }
        let auth = topics.permissions(&namespace).await.map_err(|e| storage_error(&e))?;
        let list =
            |actions: &std::collections::BTreeSet<String>| actions.iter().map(|a| RString::from(a.as_str())).collect();
        let mut out: RVec<Grant> = auth
            .namespace_auth
            .iter()
            .map(|(r, actions)| Grant {
                resource: namespace.as_str().into(),
                role: r.as_str().into(),
                actions: list(actions),
            })
            .collect();
        for (topic, roles) in &auth.destination_auth {
            for (r, actions) in roles {
                out.push(Grant { resource: topic.as_str().into(), role: r.as_str().into(), actions: list(actions) });
            }
        }
        Ok(out)
    })
}

/// Sets or revokes a grant, for the resource's tenant's admins.
pub fn set_grant(admin: &Admin, role: &str, grant: Grant) -> FfiFuture<RResult<(), HandlerError>> {
    let (topics, authorizer, role) = (Arc::clone(&admin.topics), Arc::clone(&admin.authorizer), role_of(role));
    super::on_runtime(&admin.runtime, move || async move {
        let resource = grant.resource.as_str();
        let (namespace, topic) = if resource.contains("://") {
            let name = crate::topics::TopicName::parse(resource)
                .map_err(|e| HandlerError::new(ErrorKind::INVALID_ARGUMENT, e.to_string()))?;
            (name.namespace_path(), Some(name.base().to_string()))
        } else {
            (resource.to_owned(), None)
        };
        let tenant = namespace.split('/').next().unwrap_or_default().to_owned();
        if !authorizer.is_tenant_admin(role.as_deref(), &tenant).await.map_err(|e| storage_error(&e))? {
            return Err(HandlerError::new(ErrorKind::NOT_AUTHORIZED, format!("only tenant {tenant}'s admins may")));
        }
        let actions = grant.actions.iter().map(|a| a.as_str().to_owned()).collect();
        topics.grant(&namespace, topic, grant.role.as_str(), actions).await.map_err(|e| storage_error(&e))?;
        authorizer.invalidate(&tenant);
        Ok(())
    })
}
