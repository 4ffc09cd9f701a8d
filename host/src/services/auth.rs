//! The authentication service ([`FfiHost::authenticate`],
//! [`FfiHost::sasl_server`]): handlers' credentials checked by the host's
//! [`Authenticator`], the one Pulsar's connections use.
//!
//! [`FfiHost::authenticate`]: polyport_handler_api::ffi::FfiHost::authenticate
//! [`FfiHost::sasl_server`]: polyport_handler_api::ffi::FfiHost::sasl_server

use std::sync::{Arc, Mutex};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RString, RVec},
};
use async_ffi::{FfiFuture, FutureExt as _};
use polyport_handler_api::{
    security::{AuthenticationInfo, FfiSaslOutcome, FfiSaslServer, FfiSaslServerBox, FfiSaslServer_TO, FfiSaslStep},
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
pub fn sasl_server(authenticator: &Arc<Authenticator>, mechanism: &str) -> RResult<FfiSaslServerBox, HandlerError> {
    match authenticator.sasl(mechanism) {
        Ok(session) => RResult::ROk(FfiSaslServer_TO::from_value(
            SaslServer { authenticator: Arc::clone(authenticator), session: Mutex::new(session) },
            TD_Opaque,
        )),
        Err(e) => RResult::RErr(handler_error(&e)),
    }
}

struct SaslServer {
    authenticator: Arc<Authenticator>,
    session: Mutex<sasl::Session>,
}

impl FfiSaslServer for SaslServer {
    fn step(&self, response: RVec<u8>) -> FfiFuture<RResult<FfiSaslStep, HandlerError>> {
        let result = match self.session.lock() {
            Ok(mut session) => self.authenticator.sasl_step(&mut session, &response).map_err(|e| handler_error(&e)),
            Err(_) => Err(HandlerError::new(ErrorKind::STATE, "SASL exchange poisoned")),
        };
        let step = result.map(|step| match step {
            sasl::Step::Challenge(challenge) => FfiSaslStep { challenge: challenge.into(), outcome: ROption::RNone },
            sasl::Step::Done { role, username, final_message } => FfiSaslStep {
                challenge: final_message.into(),
                outcome: ROption::RSome(FfiSaslOutcome { role: role.into(), username: username.into() }),
            },
        });
        std::future::ready(RResult::from(step)).into_ffi()
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
