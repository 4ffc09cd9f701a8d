//! SASL mechanisms the host runs for handlers: PLAIN with a token as the
//! password (KoP's convention: user name the tenant or namespace,
//! password `token:<jwt>`) and OAUTHBEARER (RFC 7628) with the same JWT
//! rules. The handler carries bytes; nothing here knows a protocol.
//!
//! Gaps: PLAIN with an ordinary password (SCRAM's credentials) comes with
//! SCRAM; OAUTHBEARER's SASL extensions are ignored, and a failure ends
//! the exchange at once rather than with RFC 7628's error challenge (Kafka
//! clients report either the same way).

use super::{AuthError, Authenticator};

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

/// One exchange.
#[derive(Debug)]
pub struct Session {
    mechanism: &'static str,
    finished: bool,
}

impl Session {
    /// An exchange of `mechanism`, which must be among `mechanisms`.
    pub fn new(mechanism: &str, mechanisms: &[&'static str]) -> Result<Self, AuthError> {
        let found = mechanisms.iter().find(|m| m.eq_ignore_ascii_case(mechanism)).ok_or_else(|| {
            AuthError::new(format!("SASL mechanism {mechanism:?} is not enabled (enabled: {})", mechanisms.join(", ")))
        })?;
        Ok(Self { mechanism: found, finished: false })
    }

    /// Takes the client's next message.
    pub fn step(&mut self, authenticator: &Authenticator, message: &[u8]) -> Result<Step, AuthError> {
        if self.finished {
            return Err(AuthError::new("the SASL exchange is already over"));
        }
        // Both mechanisms take one message; whatever happens, the exchange ends.
        self.finished = true;
        match self.mechanism {
            PLAIN => plain(authenticator, message),
            _ => oauthbearer(authenticator, message),
        }
    }
}

/// `[authzid] NUL authcid NUL passwd` (RFC 4616).
fn plain(authenticator: &Authenticator, message: &[u8]) -> Result<Step, AuthError> {
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
    let Some(token) = password.strip_prefix("token:") else {
        return Err(AuthError::new("invalid user name or password (PLAIN takes the password token:<jwt>)"));
    };
    let role = authenticator.token_role(token)?;
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
        Authenticator::new(&AuthConfig {
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
        })
        .expect("providers")
    }

    fn run(a: &Authenticator, mechanism: &str, message: &[u8]) -> Result<Step, AuthError> {
        let mut session = a.sasl(mechanism)?;
        a.sasl_step(&mut session, message)
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
        let wrong = run(&a, "PLAIN", b"\0alice\0secret").expect_err("not a token");
        assert!(wrong.reason().contains("invalid user name or password"));
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
        let _ = a.sasl_step(&mut session, b"\0u\0token:x");
        assert!(a.sasl_step(&mut session, b"\0u\0token:x").is_err());
        let e = a.sasl("GSSAPI").expect_err("not served");
        assert!(e.reason().contains("PLAIN, OAUTHBEARER"), "{e}");
    }
}
