//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server side,
//! and the credentials it checks (Kafka's, KIP-554: a salt, iterations, a
//! stored key and a server key; never the password).
//!
//! A user without credentials gets a server-first message like anyone
//! else's (a salt derived from its name with a per-process secret, so the
//! same name gets the same salt) and fails at the final message with the
//! same error as a wrong password: the exchange does not tell who exists.
//!
//! The primitives are ring's (PBKDF2, HMAC, SHA-2), which the broker's
//! TLS already builds; comparisons of secrets are constant-time.

use std::num::NonZeroU32;

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use ring::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use super::AuthError;

/// Kafka's bounds on iterations.
pub const MIN_ITERATIONS: u32 = 4096;
/// Kafka's bounds on iterations.
pub const MAX_ITERATIONS: u32 = 16384;

/// The same answer for an unknown user and a wrong password.
pub const BAD_CREDENTIALS: &str = "invalid user name or password";

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl Mechanism {
    /// Both, by preference.
    pub const ALL: [Self; 2] = [Self::Sha512, Self::Sha256];

    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(name))
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Self::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data).as_ref().to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), data).as_ref().to_vec()
    }

    /// `Hi(password, salt, iterations)`: PBKDF2. Costs milliseconds: call
    /// it on a blocking thread.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.digest().output_len()];
        let rounds = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(self.pbkdf2(), rounds, salt, password, &mut out);
        out
    }
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// A stored credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    /// The salt.
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    /// `H(HMAC(salted password, "Client Key"))`.
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    /// `HMAC(salted password, "Server Key")`.
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

impl Credential {
    /// The credential of a salted password (what Kafka's
    /// AlterUserScramCredentials carries).
    pub fn from_salted(mechanism: Mechanism, salt: Vec<u8>, salted: &[u8], iterations: u32) -> Self {
        let client_key = mechanism.mac(salted, b"Client Key");
        Self {
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.mac(salted, b"Server Key"),
            salt,
            iterations,
        }
    }

    /// Whether `password` is this credential's (PBKDF2: call it on a
    /// blocking thread). For SASL PLAIN with an ordinary password.
    pub fn matches(&self, mechanism: Mechanism, password: &[u8]) -> bool {
        let salted = mechanism.salted_password(password, &self.salt, self.iterations);
        let client_key = mechanism.mac(&salted, b"Client Key");
        bool::from(mechanism.hash(&client_key).ct_eq(&self.stored_key))
    }
}

/// The client's first message.
#[derive(Debug, Clone)]
pub struct ClientFirst {
    /// `n,,` or `y,,` (channel binding is not supported).
    gs2_header: String,
    /// The message without the header.
    bare: String,
    /// The user (`n=`), decoded.
    pub user: String,
    nonce: String,
}

fn malformed(what: &str) -> AuthError {
    AuthError::new(format!("malformed SCRAM message: {what}"))
}

/// Decodes `=2C` and `=3D` (RFC 5802's `saslname`).
fn decode_name(name: &str) -> Result<String, AuthError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("a user name with a bad = escape")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses `gs2-header client-first-bare`.
pub fn client_first(message: &[u8]) -> Result<ClientFirst, AuthError> {
    let text = std::str::from_utf8(message).map_err(|_| malformed("not UTF-8"))?;
    let mut parts = text.splitn(3, ',');
    let (Some(binding), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("expected n,,n=<user>,r=<nonce>"));
    };
    match binding {
        "n" | "y" => {}
        b if b.starts_with("p=") => return Err(AuthError::new("SCRAM channel binding is not supported")),
        _ => return Err(malformed("expected the gs2 header n,,")),
    }
    if !authzid.is_empty() && !authzid.starts_with("a=") {
        return Err(malformed("expected an empty authzid or a=<authzid>"));
    }
    let mut user = None;
    let mut nonce = None;
    for attribute in bare.split(',') {
        if let Some(v) = attribute.strip_prefix("n=") {
            user = Some(decode_name(v)?);
        } else if let Some(v) = attribute.strip_prefix("r=") {
            nonce = Some(v.to_owned());
        } else if attribute.starts_with("m=") {
            return Err(AuthError::new("SCRAM mandatory extensions are not supported"));
        }
        // Other attributes (Kafka's tokenauth=true) are extensions: ignored.
    }
    let user = user.filter(|u| !u.is_empty()).ok_or_else(|| malformed("no user name (n=)"))?;
    let nonce = nonce.filter(|n| !n.is_empty() && n.is_ascii()).ok_or_else(|| malformed("no nonce (r=)"))?;
    Ok(ClientFirst { gs2_header: format!("{binding},{authzid},"), bare: bare.to_owned(), user, nonce })
}

/// What the server remembers between its first message and the client's final one.
#[derive(Debug)]
pub struct Pending {
    mechanism: Mechanism,
    first: ClientFirst,
    server_first: String,
    nonce: String,
    /// `None`: an unknown user, who fails at the end like a wrong password.
    credential: Option<Credential>,
}

/// The server's first message for `first`, given the user's credential.
/// `fake_salt` stands in for an unknown user's.
pub fn server_first(
    mechanism: Mechanism,
    first: ClientFirst,
    credential: Option<Credential>,
    fake_salt: Vec<u8>,
) -> Result<(String, Pending), AuthError> {
    let mut random = [0u8; 18];
    getrandom::fill(&mut random).map_err(|_| AuthError::new("the broker has no randomness for a nonce"))?;
    let nonce = format!("{}{}", first.nonce, B64.encode(random));
    let (salt, iterations) = match &credential {
        Some(c) => (c.salt.clone(), c.iterations),
        None => (fake_salt, MIN_ITERATIONS),
    };
    let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
    Ok((server_first.clone(), Pending { mechanism, first, server_first, nonce, credential }))
}

/// Checks the client's final message; the server's final message (`v=`)
/// and the user on success.
pub fn client_final(pending: Pending, message: &[u8]) -> Result<(String, String), AuthError> {
    let text = std::str::from_utf8(message).map_err(|_| malformed("not UTF-8"))?;
    let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(|| malformed("no proof (p=)"))?;
    let mut binding = None;
    let mut nonce = None;
    for attribute in without_proof.split(',') {
        if let Some(v) = attribute.strip_prefix("c=") {
            binding = Some(v);
        } else if let Some(v) = attribute.strip_prefix("r=") {
            nonce = Some(v);
        }
    }
    if binding != Some(B64.encode(&pending.first.gs2_header).as_str()) {
        return Err(malformed("the channel binding (c=) is not the gs2 header sent first"));
    }
    if nonce != Some(pending.nonce.as_str()) {
        return Err(AuthError::new("SCRAM: the final message's nonce is not the one the server sent"));
    }
    let proof = B64.decode(proof).map_err(|_| malformed("the proof is not base64"))?;
    let mechanism = pending.mechanism;
    let auth_message = format!("{},{},{without_proof}", pending.first.bare, pending.server_first);
    let Some(credential) = pending.credential else {
        return Err(AuthError::new(BAD_CREDENTIALS));
    };
    let signature = mechanism.mac(&credential.stored_key, auth_message.as_bytes());
    if proof.len() != signature.len() {
        return Err(AuthError::new(BAD_CREDENTIALS));
    }
    let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
    if !bool::from(mechanism.hash(&client_key).ct_eq(&credential.stored_key)) {
        return Err(AuthError::new(BAD_CREDENTIALS));
    }
    let server_signature = mechanism.mac(&credential.server_key, auth_message.as_bytes());
    Ok((format!("v={}", B64.encode(server_signature)), pending.first.user))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client, as RFC 5802 computes it.
    fn client_final_message(m: Mechanism, password: &str, first_bare: &str, server_first: &str) -> String {
        let parts: Vec<&str> = server_first.split(',').collect();
        let nonce = &parts[0][2..];
        let salt = B64.decode(&parts[1][2..]).expect("salt");
        let iterations: u32 = parts[2][2..].parse().expect("i");
        let salted = m.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = m.mac(&salted, b"Client Key");
        let stored = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{first_bare},{server_first},{without_proof}");
        let signature = m.mac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    fn exchange(m: Mechanism, stored: Option<Credential>, password: &str) -> Result<(String, String), AuthError> {
        let first = client_first(b"n,,n=al=2Cice,r=abcdefgh").expect("first");
        assert_eq!(first.user, "al,ice");
        let (server, pending) = server_first(m, first, stored, vec![7; 16]).expect("server first");
        let last = client_final_message(m, password, "n=al=2Cice,r=abcdefgh", &server);
        client_final(pending, last.as_bytes())
    }

    #[test]
    fn the_right_password_proves_the_user_both_ways() {
        for m in Mechanism::ALL {
            let salted = m.salted_password(b"s3cret", b"salty", 4096);
            let stored = Credential::from_salted(m, b"salty".to_vec(), &salted, 4096);
            let (server_final, user) = exchange(m, Some(stored.clone()), "s3cret").expect("authenticated");
            assert_eq!(user, "al,ice");
            assert!(server_final.starts_with("v="));
            assert!(stored.matches(m, b"s3cret") && !stored.matches(m, b"other"));
        }
    }

    #[test]
    fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
        let m = Mechanism::Sha512;
        let salted = m.salted_password(b"s3cret", b"salty", 4096);
        let stored = Credential::from_salted(m, b"salty".to_vec(), &salted, 4096);
        let wrong = exchange(m, Some(stored), "guess").expect_err("wrong password");
        let unknown = exchange(m, None, "guess").expect_err("unknown user");
        assert_eq!(wrong, unknown);
        assert_eq!(wrong.reason(), BAD_CREDENTIALS);
    }

    #[test]
    fn a_wrong_nonce_or_a_malformed_message_is_named() {
        let m = Mechanism::Sha256;
        let first = client_first(b"n,,n=u,r=nonce1").expect("first");
        let (_, pending) = server_first(m, first, None, vec![1; 16]).expect("server first");
        let e = client_final(pending, b"c=biws,r=nonce1forged,p=AAAA").expect_err("nonce");
        assert!(e.reason().contains("nonce"), "{e}");
        for bad in [&b""[..], b"n,,", b"p=tls-unique,,n=u,r=x", b"n,,n=,r=x", b"n,,n=u", b"n,,n=a=ZZ,r=x"] {
            assert!(client_first(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
