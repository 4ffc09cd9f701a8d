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
pub mod scram;
pub mod tls;
pub mod token;

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use crate::topics::Topics;

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
pub struct Authenticator {
    enabled: bool,
    token: Option<token::TokenVerifier>,
    tls: bool,
    super_users: Vec<String>,
    failures: AtomicU64,
    /// SCRAM users' credentials (the metadata store).
    credentials: Option<Arc<Topics>>,
    /// Derives the salts of users that do not exist, so that SCRAM does
    /// not tell who does.
    secret: [u8; 32],
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("enabled", &self.enabled).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Loads the providers' keys; SCRAM users (and PLAIN with an ordinary
    /// password) are checked against `credentials`' store.
    pub fn new(credentials: Option<Arc<Topics>>, config: &AuthConfig) -> Result<Self, token::KeyError> {
        let token = if config.enabled && config.token_provider {
            Some(token::TokenVerifier::new(&config.token)?)
        } else {
            None
        };
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| token::KeyError::Invalid(format!("no randomness: {e}")))?;
        Ok(Self {
            enabled: config.enabled,
            token,
            tls: config.enabled && config.tls_provider,
            super_users: config.super_users.clone(),
            failures: AtomicU64::new(0),
            credentials: credentials.filter(|_| config.enabled),
            secret,
        })
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

    /// The SASL mechanisms the providers support: PLAIN when tokens or
    /// SCRAM users can prove a role, OAUTHBEARER with tokens, SCRAM
    /// whenever authentication is on (its users are in the store).
    pub fn sasl_mechanisms(&self) -> Vec<&'static str> {
        let mut mechanisms = Vec::new();
        if self.token.is_some() || self.credentials.is_some() {
            mechanisms.push(sasl::PLAIN);
        }
        if self.token.is_some() {
            mechanisms.push(sasl::OAUTHBEARER);
        }
        if self.credentials.is_some() {
            mechanisms.extend([scram::Mechanism::Sha256.name(), scram::Mechanism::Sha512.name()]);
        }
        mechanisms
    }

    /// `user`'s credential for `mechanism`, if it has one.
    pub(crate) async fn scram_credential(
        &self,
        user: &str,
        mechanism: scram::Mechanism,
    ) -> Result<Option<scram::Credential>, AuthError> {
        let Some(topics) = &self.credentials else { return Ok(None) };
        match topics.scram_credentials(user).await {
            Ok(mut all) => Ok(all.remove(mechanism.name())),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read SCRAM credentials");
                Err(AuthError::new("the broker cannot read credentials now; retry"))
            }
        }
    }

    /// The salt shown for a user without credentials: the same for the
    /// same name, unpredictable without this process's secret.
    pub(crate) fn fake_salt(&self, user: &str) -> Vec<u8> {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.secret);
        ring::hmac::sign(&key, user.as_bytes()).as_ref()[..16].to_vec()
    }

    /// The role an ordinary password proves: `user`'s, when it matches one
    /// of its SCRAM credentials (PBKDF2 on a blocking thread).
    pub(crate) async fn check_password(&self, user: &str, password: &str) -> Result<String, AuthError> {
        let bad = || AuthError::new(scram::BAD_CREDENTIALS);
        let Some(topics) = &self.credentials else { return Err(bad()) };
        let all = topics.scram_credentials(user).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot read SCRAM credentials");
            AuthError::new("the broker cannot read credentials now; retry")
        })?;
        let Some((mechanism, credential)) =
            scram::Mechanism::ALL.into_iter().find_map(|m| all.get(m.name()).map(|c| (m, c.clone())))
        else {
            return Err(bad());
        };
        let password = password.as_bytes().to_vec();
        let matches =
            tokio::task::spawn_blocking(move || credential.matches(mechanism, &password)).await.unwrap_or(false);
        if matches {
            Ok(user.to_owned())
        } else {
            Err(bad())
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

    /// The role `data` proves under `method`, and when the proof expires
    /// (a token's `exp`): what a connection that outlives its credentials
    /// must renew.
    pub fn authenticate_until(
        &self,
        method: &str,
        data: &[u8],
    ) -> Result<(String, Option<std::time::SystemTime>), AuthError> {
        self.counted(match method {
            "token" => std::str::from_utf8(data)
                .map_err(|_| AuthError::new("invalid token: it is not a JWT"))
                .and_then(|token| match &self.token {
                    None => Err(AuthError::new("token authentication is not enabled on this broker")),
                    Some(v) => v.verify_until(token).map_err(|e| AuthError::new(e.to_string())),
                })
                .map(|(role, exp)| {
                    (role, exp.map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)))
                }),
            other => Err(AuthError::new(format!(
                "authentication method {other:?} is not enabled (enabled: {})",
                self.methods().join(", ")
            ))),
        })
    }

    /// The role `data` proves under `method` (Pulsar's method names).
    pub fn authenticate(&self, method: &str, data: &[u8]) -> Result<String, AuthError> {
        self.authenticate_until(method, data).map(|(role, _)| role)
    }

    /// Starts a SASL exchange.
    pub fn sasl(&self, mechanism: &str) -> Result<sasl::Session, AuthError> {
        self.counted(sasl::Session::new(mechanism, &self.sasl_mechanisms()))
    }

    /// A step of `session`.
    pub async fn sasl_step(&self, session: &mut sasl::Session, message: &[u8]) -> Result<sasl::Step, AuthError> {
        let step = session.step(self, message).await;
        self.counted(step)
    }
}
