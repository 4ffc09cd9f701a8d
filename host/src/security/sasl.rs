//! SASL mechanisms the host runs for handlers: PLAIN (RFC 4616) with a
//! token as the password (KoP's convention: user name the tenant or
//! namespace, password `token:<jwt>`) or a SCRAM user's password;
//! OAUTHBEARER (RFC 7628) with the same JWT rules; SCRAM-SHA-256 and
//! SCRAM-SHA-512 ([`super::scram`]) against the credentials in the
//! metadata store. The handler carries bytes; nothing here knows a protocol.
//!
//! Gaps: OAUTHBEARER's SASL extensions are ignored, and a failure ends
//! the exchange at once rather than with RFC 7628's error challenge (Kafka
//! clients report either the same way).

use super::{scram, AuthError, Authenticator};

/// A mechanism's name as clients send it.
pub const PLAIN: &str = "PLAIN";
/// RFC 7628.
pub const OAUTHBEARER: &str = "OAUTHBEARER";

/// What a step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this to the client and wait for its answer.
    Challenge(Vec<u8>),
    /// Authenticated.
    Done {
        /// The role proven.
        role: String,
        /// The user name the client gave.
        username: String,
        /// The server's last message.
        final_message: Vec<u8>,
    },
}

#[derive(Debug)]
enum State {
    Plain,
    OAuthBearer,
    /// SCRAM before the client's first message.
    ScramStart(scram::Mechanism),
    /// SCRAM after the server's first message.
    ScramSent(Box<scram::Pending>),
    Finished,
}

/// One exchange.
#[derive(Debug)]
pub struct Session {
    state: State,
}

impl Session {
    /// An exchange of `mechanism`, which must be among `mechanisms`.
    pub fn new(mechanism: &str, mechanisms: &[&'static str]) -> Result<Self, AuthError> {
        let found = mechanisms.iter().find(|m| m.eq_ignore_ascii_case(mechanism)).ok_or_else(|| {
            AuthError::new(format!("SASL mechanism {mechanism:?} is not enabled (enabled: {})", mechanisms.join(", ")))
        })?;
        let state = match *found {
            PLAIN => State::Plain,
            OAUTHBEARER => State::OAuthBearer,
            other => match scram::Mechanism::from_name(other) {
                Some(m) => State::ScramStart(m),
                None => return Err(AuthError::new(format!("SASL mechanism {other} has no implementation"))),
            },
        };
        Ok(Self { state })
    }

    /// Takes the client's next message. Whatever fails ends the exchange.
    pub async fn step(&mut self, authenticator: &Authenticator, message: &[u8]) -> Result<Step, AuthError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Plain => plain(authenticator, message).await,
            State::OAuthBearer => oauthbearer(authenticator, message),
            State::ScramStart(mechanism) => {
                let first = scram::client_first(message)?;
                let credential = authenticator.scram_credential(&first.user, mechanism).await?;
                let fake_salt = authenticator.fake_salt(&first.user);
                let (server_first, pending) = scram::server_first(mechanism, first, credential, fake_salt)?;
                self.state = State::ScramSent(Box::new(pending));
                Ok(Step::Challenge(server_first.into_bytes()))
            }
            State::ScramSent(pending) => {
                let (server_final, user) = scram::client_final(*pending, message)?;
                Ok(Step::Done { role: user.clone(), username: user, final_message: server_final.into_bytes() })
            }
            State::Finished => Err(AuthError::new("the SASL exchange is already over")),
        }
    }
}

/// `[authzid] NUL authcid NUL passwd` (RFC 4616).
async fn plain(authenticator: &Authenticator, message: &[u8]) -> Result<Step, AuthError> {
    let malformed = || AuthError::new("malformed PLAIN message (expected [authzid] NUL user NUL password)");
    let text = std::str::from_utf8(message).map_err(|_| malformed())?;
    let mut parts = text.split('\0');
    let (Some(_authzid), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    if user.is_empty() {
        return Err(malformed());
    }
    let role = match password.strip_prefix("token:") {
        Some(token) => authenticator.token_role(token)?,
        // An ordinary password: a SCRAM user's.
        None => authenticator.check_password(user, password).await?,
    };
    Ok(Step::Done { role, username: user.to_owned(), final_message: Vec::new() })
}

/// `gs2-header kvsep *(key=value kvsep) kvsep`, kvsep = 0x01, with
/// `auth=Bearer <token>` among the pairs.
fn oauthbearer(authenticator: &Authenticator, message: &[u8]) -> Result<Step, AuthError> {
    let malformed = || AuthError::new("malformed OAUTHBEARER message (expected n,,\\x01auth=Bearer <token>\\x01\\x01)");
    let text = std::str::from_utf8(message).map_err(|_| malformed())?;
    let mut fields = text.split('\u{1}');
    let header = fields.next().ok_or_else(malformed)?;
    // gs2-header: "n," [ "a=" authzid ] ","
    let authzid = header.strip_prefix("n,").and_then(|rest| rest.strip_suffix(',')).ok_or_else(malformed)?;
    let username = authzid.strip_prefix("a=").unwrap_or_default().to_owned();
    let token = fields
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "auth")
        .and_then(|(_, v)| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .ok_or_else(malformed)?;
    let role = authenticator.token_role(token)?;
    let username = if username.is_empty() { role.clone() } else { username };
    Ok(Step::Done { role, username, final_message: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::{token, AuthConfig};
    use base64::Engine as _;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn authenticator() -> Authenticator {
        Authenticator::new(
            None,
            &AuthConfig {
                enabled: true,
                token_provider: true,
                tls_provider: false,
                token: token::TokenConfig {
                    secret_key: Some(format!("data:;base64,{}", base64::engine::general_purpose::STANDARD.encode(KEY))),
                    public_alg: "RS256".into(),
                    role_claim: "sub".into(),
                    audience_claim: "aud".into(),
                    ..token::TokenConfig::default()
                },
                super_users: Vec::new(),
            },
        )
        .expect("providers")
    }

    fn run(a: &Authenticator, mechanism: &str, message: &[u8]) -> Result<Step, AuthError> {
        let mut session = a.sasl(mechanism)?;
        futures::executor::block_on(a.sasl_step(&mut session, message))
    }

    #[test]
    fn plain_takes_a_token_as_the_password() {
        let a = authenticator();
        let jwt = token::create(KEY, "HS256", "alice", None).expect("sign");
        let step = run(&a, "PLAIN", format!("\0tenant-a\0token:{jwt}").as_bytes()).expect("authenticated");
        assert_eq!(step, Step::Done { role: "alice".into(), username: "tenant-a".into(), final_message: Vec::new() });
        assert_eq!(a.failures(), 0);
        for bad in [&b"no separators"[..], b"\0\0token:x", b"a\0b\0c\0d", b"\xff\0u\0p"] {
            let e = run(&a, "PLAIN", bad).expect_err("malformed");
            assert!(e.reason().contains("malformed") || e.reason().contains("token"), "{e}");
        }
        let wrong = run(&a, "PLAIN", b"\0alice\0secret").expect_err("no SCRAM user");
        assert!(wrong.reason().contains("invalid user name or password"), "{wrong}");
        assert_eq!(a.failures(), 5, "each failure is counted");
    }

    #[test]
    fn oauthbearer_takes_the_bearer_token() {
        let a = authenticator();
        let jwt = token::create(KEY, "HS256", "bob", None).expect("sign");
        let message = format!("n,,\u{1}host=localhost\u{1}auth=Bearer {jwt}\u{1}\u{1}");
        let step = run(&a, "OAUTHBEARER", message.as_bytes()).expect("authenticated");
        assert!(matches!(step, Step::Done { ref role, .. } if role == "bob"));
        assert!(run(&a, "OAUTHBEARER", b"n,,\x01auth=Basic abc\x01\x01").is_err());
        assert!(run(&a, "OAUTHBEARER", b"y,,\x01auth=Bearer x\x01\x01").is_err());
    }

    #[test]
    fn an_exchange_ends_after_its_message_and_unknown_mechanisms_are_named() {
        let a = authenticator();
        let mut session = a.sasl("plain").expect("case-insensitive");
        let _ = futures::executor::block_on(a.sasl_step(&mut session, b"\0u\0token:x"));
        assert!(futures::executor::block_on(a.sasl_step(&mut session, b"\0u\0token:x")).is_err());
        let e = a.sasl("GSSAPI").expect_err("not served");
        assert!(e.reason().contains("PLAIN, OAUTHBEARER"), "{e}");
    }
}
