//! Pulsar's token authentication (`AuthenticationProviderToken`): a JWT
//! signed with `tokenSecretKey` (HS256/384/512) or with the private half
//! of `tokenPublicKey` (RS256/384/512, ES256/384, PS256/384/512); its
//! `tokenAuthClaim` claim (`sub` by default) is the role, and `exp` and
//! `nbf` are honoured when present (a token without `exp` never expires,
//! as in Pulsar). Keys are given as Pulsar gives them: `data:;base64,<key>`
//! or `file:///path` (a plain path works too); a secret key is its raw
//! bytes, a public key PEM or DER (`SubjectPublicKeyInfo`, as `pulsar
//! tokens create-key-pair` writes it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

/// Why a token's keys cannot be used (start-up stops).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key's location cannot be read.
    #[error("cannot read {location}: {reason}")]
    Read {
        /// The location, as configured (`file:` paths; never key bytes).
        location: String,
        /// Why.
        reason: String,
    },
    /// The bytes are not a key of the expected kind.
    #[error("{0}")]
    Invalid(String),
}

/// Why a token proves nothing. The text is what the client is told: it
/// names the rule broken and never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT at all, or not one this broker's key signed.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// Before its `nbf`.
    #[error("token not valid yet")]
    NotYetValid,
    /// No role claim.
    #[error("the token has no {0:?} claim")]
    NoRole(String),
    /// Its audience is not this broker's (`tokenAudience`).
    #[error("the token's audience is not this broker's")]
    Audience,
}

/// Reads a key as Pulsar locates keys.
pub fn read_key(location: &str) -> Result<Vec<u8>, KeyError> {
    let location = location.trim();
    if let Some(data) = location.strip_prefix("data:") {
        // `data:;base64,<b64>` (Pulsar), or raw text after the comma.
        let (kind, payload) = data.split_once(',').unwrap_or(("", data));
        return if kind.ends_with(";base64") || kind == ";base64" {
            base64::engine::general_purpose::STANDARD.decode(payload.trim()).map_err(|e| KeyError::Read {
                location: "a data: key".into(),
                reason: format!("its base64 does not decode: {e}"),
            })
        } else {
            Ok(payload.as_bytes().to_vec())
        };
    }
    let path = location.strip_prefix("file://").unwrap_or(location);
    std::fs::read(path).map_err(|e| KeyError::Read { location: location.into(), reason: e.to_string() })
}

/// A public key as PEM: DER (SubjectPublicKeyInfo) is wrapped.
fn public_pem(bytes: &[u8]) -> Vec<u8> {
    if bytes.starts_with(b"-----BEGIN") {
        return bytes.to_vec();
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem.into_bytes()
}

fn parse_algorithm(name: &str) -> Option<Algorithm> {
    name.trim().to_ascii_uppercase().parse().ok()
}

/// Validates tokens with one key.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    role_claim: String,
    /// `(tokenAudienceClaim, tokenAudience)`.
    audience: Option<(String, String)>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TokenVerifier").field("algorithms", &self.validation.algorithms).finish_non_exhaustive()
    }
}

/// The keys that configure [`TokenVerifier`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenConfig {
    /// `tokenSecretKey`.
    pub secret_key: Option<String>,
    /// `tokenPublicKey`.
    pub public_key: Option<String>,
    /// `tokenPublicAlg` (RS256 by default).
    pub public_alg: String,
    /// `tokenAuthClaim` (`sub` by default).
    pub role_claim: String,
    /// `tokenAudienceClaim` (`aud` by default).
    pub audience_claim: String,
    /// `tokenAudience`: when set, tokens must name it in their audience claim.
    pub audience: Option<String>,
}

impl TokenVerifier {
    /// Loads the key `config` names.
    pub fn new(config: &TokenConfig) -> Result<Self, KeyError> {
        let (key, algorithms) = match (&config.secret_key, &config.public_key) {
            (Some(secret), None) => {
                let bytes = read_key(secret)?;
                if bytes.is_empty() {
                    return Err(KeyError::Invalid("tokenSecretKey is empty".into()));
                }
                (DecodingKey::from_secret(&bytes), vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512])
            }
            (None, Some(public)) => {
                let alg = parse_algorithm(&config.public_alg).ok_or_else(|| {
                    KeyError::Invalid(format!("tokenPublicAlg {:?} is no JWT algorithm", config.public_alg))
                })?;
                let pem = public_pem(&read_key(public)?);
                let key = match alg {
                    Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512 => DecodingKey::from_rsa_pem(&pem),
                    Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                    _ => {
                        return Err(KeyError::Invalid(format!(
                            "tokenPublicAlg {:?}: expected RS256/384/512, PS256/384/512 or ES256/384",
                            config.public_alg
                        )))
                    }
                }
                .map_err(|e| KeyError::Invalid(format!("tokenPublicKey is not a {alg:?} public key: {e}")))?;
                (key, vec![alg])
            }
            (Some(_), Some(_)) => {
                return Err(KeyError::Invalid("set tokenSecretKey or tokenPublicKey, not both".into()))
            }
            (None, None) => {
                return Err(KeyError::Invalid(
                    "the token provider needs tokenSecretKey (HS256) or tokenPublicKey (RS256/ES256)".into(),
                ))
            }
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        // Pulsar's tokens need not expire; when they say when, it holds.
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 0;
        validation.validate_aud = false; // checked below, on the configured claim
        let audience = config.audience.clone().map(|a| (config.audience_claim.clone(), a));
        Ok(Self { key, validation, role_claim: config.role_claim.clone(), audience })
    }

    /// The role `token` proves.
    pub fn verify(&self, token: &str) -> Result<String, TokenError> {
        self.verify_until(token).map(|(role, _)| role)
    }

    /// The role `token` proves, and until when (`exp`, seconds since the
    /// Unix epoch; `None`: it never expires).
    pub fn verify_until(&self, token: &str) -> Result<(String, Option<u64>), TokenError> {
        use jsonwebtoken::errors::ErrorKind as K;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token.trim(),
            &self.key,
            &self.validation,
        )
        .map_err(|e| match e.kind() {
            K::ExpiredSignature => TokenError::Expired,
            K::ImmatureSignature => TokenError::NotYetValid,
            K::InvalidSignature => TokenError::Invalid("its signature does not match this broker's key"),
            K::InvalidAlgorithm => TokenError::Invalid("it is signed with an algorithm this broker's key does not use"),
            K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => TokenError::Invalid("it is not a JWT"),
            _ => TokenError::Invalid("it does not verify"),
        })?;
        if let Some((claim, audience)) = &self.audience {
            let ok = match data.claims.get(claim) {
                Some(serde_json::Value::String(a)) => a == audience,
                Some(serde_json::Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(audience)),
                _ => false,
            };
            if !ok {
                return Err(TokenError::Audience);
            }
        }
        let expires = data.claims.get("exp").and_then(serde_json::Value::as_u64);
        match data.claims.get(&self.role_claim) {
            Some(serde_json::Value::String(role)) if !role.is_empty() => Ok((role.clone(), expires)),
            _ => Err(TokenError::NoRole(self.role_claim.clone())),
        }
    }
}

/// Signs a token for `subject` (what `broker tokens create` prints).
/// `key` is a secret (HS*) or a PEM private key (RS*, PS*, ES*).
pub fn create(key: &[u8], algorithm: &str, subject: &str, expires_in: Option<Duration>) -> Result<String, KeyError> {
    let alg =
        parse_algorithm(algorithm).ok_or_else(|| KeyError::Invalid(format!("{algorithm:?} is no JWT algorithm")))?;
    let encoding = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Ok(EncodingKey::from_secret(key)),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(key),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(key),
        _ => EncodingKey::from_rsa_pem(key),
    }
    .map_err(|e| KeyError::Invalid(format!("the key is not a {alg:?} signing key: {e}")))?;
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), subject.into());
    if let Some(ttl) = expires_in {
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + ttl;
        claims.insert("exp".into(), exp.as_secs().into());
    }
    jsonwebtoken::encode(&Header::new(alg), &claims, &encoding)
        .map_err(|e| KeyError::Invalid(format!("cannot sign: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(secret: &[u8]) -> TokenVerifier {
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        TokenVerifier::new(&TokenConfig {
            secret_key: Some(format!("data:;base64,{b64}")),
            role_claim: "sub".into(),
            audience_claim: "aud".into(),
            public_alg: "RS256".into(),
            ..TokenConfig::default()
        })
        .expect("key")
    }

    #[test]
    fn a_token_proves_its_subject_until_it_expires() {
        let v = verifier(b"0123456789abcdef0123456789abcdef");
        let token = create(b"0123456789abcdef0123456789abcdef", "HS256", "alice", None).expect("sign");
        assert_eq!(v.verify(&token), Ok("alice".to_owned()));
        let short = create(b"0123456789abcdef0123456789abcdef", "HS256", "alice", Some(Duration::ZERO)).expect("sign");
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(v.verify(&short), Err(TokenError::Expired));
    }

    #[test]
    fn another_key_or_garbage_proves_nothing() {
        let v = verifier(b"0123456789abcdef0123456789abcdef");
        let other = create(b"another key, another key, another", "HS256", "alice", None).expect("sign");
        assert!(matches!(v.verify(&other), Err(TokenError::Invalid(_))));
        assert!(matches!(v.verify("not.a.jwt"), Err(TokenError::Invalid(_))));
        assert!(matches!(v.verify(""), Err(TokenError::Invalid(_))));
    }
}
