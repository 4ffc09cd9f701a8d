//! Security: TLS on the listeners (`tls.rs`) and the authentication
//! providers every protocol shares (`token.rs`, `sasl.rs`), configured
//! with Pulsar's keys. Pulsar's connections and the handlers' (through
//! handler-api's authentication service) ask the same [`Authenticator`].
//!
//! Secrets stay here: errors and logs name a rule that was broken, never
//! a token, password or key, and a wrong password and an unknown user get
//! the same answer.

pub mod authz;
pub mod sasl;
pub mod tls;
pub mod token;

use std::sync::atomic::{AtomicU64, Ordering};

/// The provider names Pulsar's `authenticationProviders` takes, with the
/// short names accepted too.
const TOKEN_PROVIDERS: &[&str] = &["org.apache.pulsar.broker.authentication.AuthenticationProviderToken", "token"];
const TLS_PROVIDERS: &[&str] = &["org.apache.pulsar.broker.authentication.AuthenticationProviderTls", "tls"];

/// Why credentials prove nothing; the text is safe to send to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed: {0}")]
pub struct AuthError(String);

impl AuthError {
    /// An error saying `reason`, which must name no secret.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }

    /// The reason alone.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

/// The authentication keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// `authenticationEnabled`.
    pub enabled: bool,
    /// `authenticationProviders` includes the token provider.
    pub token_provider: bool,
    /// `authenticationProviders` includes the TLS provider.
    pub tls_provider: bool,
    /// The token provider's keys.
    pub token: token::TokenConfig,
    /// `superUserRoles`.
    pub super_users: Vec<String>,
}

impl AuthConfig {
    /// Sorts `authenticationProviders` into the providers served; an
    /// unknown one is an error naming it.
    pub fn providers(list: &str) -> Result<(bool, bool), String> {
        let (mut token, mut tls) = (false, false);
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if TOKEN_PROVIDERS.iter().any(|p| p.eq_ignore_ascii_case(name)) {
                token = true;
            } else if TLS_PROVIDERS.iter().any(|p| p.eq_ignore_ascii_case(name)) {
                tls = true;
            } else {
                return Err(name.to_owned());
            }
        }
        Ok((token, tls))
    }
}

/// The providers, as every protocol asks them.
#[derive(Debug)]
pub struct Authenticator {
    enabled: bool,
    token: Option<token::TokenVerifier>,
    tls: bool,
    super_users: Vec<String>,
    failures: AtomicU64,
}

impl Authenticator {
    /// Loads the providers' keys.
    pub fn new(config: &AuthConfig) -> Result<Self, token::KeyError> {
        let token = if config.enabled && config.token_provider {
            Some(token::TokenVerifier::new(&config.token)?)
        } else {
            None
        };
        Ok(Self {
            enabled: config.enabled,
            token,
            tls: config.enabled && config.tls_provider,
            super_users: config.super_users.clone(),
            failures: AtomicU64::new(0),
        })
    }

    /// No authentication: every client is anonymous.
    pub fn disabled() -> Self {
        Self { enabled: false, token: None, tls: false, super_users: Vec::new(), failures: AtomicU64::new(0) }
    }

    /// `authenticationEnabled`.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether a verified client certificate proves its CN as a role.
    pub fn tls_provider(&self) -> bool {
        self.tls
    }

    /// `superUserRoles`.
    pub fn super_users(&self) -> &[String] {
        &self.super_users
    }

    /// Failed authentications since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The SASL mechanisms the providers support.
    pub fn sasl_mechanisms(&self) -> Vec<&'static str> {
        if self.token.is_some() {
            vec![sasl::PLAIN, sasl::OAUTHBEARER]
        } else {
            Vec::new()
        }
    }

    /// The one-shot methods [`authenticate`](Self::authenticate) takes.
    pub fn methods(&self) -> Vec<&'static str> {
        if self.token.is_some() {
            vec!["token"]
        } else {
            Vec::new()
        }
    }

    /// The role a token proves (not counted: the callers below count).
    pub(crate) fn token_role(&self, token: &str) -> Result<String, AuthError> {
        let Some(verifier) = &self.token else {
            return Err(AuthError::new("token authentication is not enabled on this broker"));
        };
        verifier.verify(token).map_err(|e| AuthError::new(e.to_string()))
    }

    /// Counts a failure (the caller logs it, with its connection).
    fn counted<T>(&self, result: Result<T, AuthError>) -> Result<T, AuthError> {
        if result.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// The role `data` proves under `method` (Pulsar's method names).
    pub fn authenticate(&self, method: &str, data: &[u8]) -> Result<String, AuthError> {
        self.counted(match method {
            "token" => std::str::from_utf8(data)
                .map_err(|_| AuthError::new("invalid token: it is not a JWT"))
                .and_then(|token| self.token_role(token)),
            other => Err(AuthError::new(format!(
                "authentication method {other:?} is not enabled (enabled: {})",
                self.methods().join(", ")
            ))),
        })
    }

    /// Starts a SASL exchange.
    pub fn sasl(&self, mechanism: &str) -> Result<sasl::Session, AuthError> {
        self.counted(sasl::Session::new(mechanism, &self.sasl_mechanisms()))
    }

    /// A step of `session`.
    pub fn sasl_step(&self, session: &mut sasl::Session, message: &[u8]) -> Result<sasl::Step, AuthError> {
        self.counted(session.step(self, message))
    }
}
