//! SaslAuthenticate (key 36).
//!
//! Versions: 0-2 (v1 adds `session_lifetime_ms`, v2 is flexible). On a
//! `SASL_*` listener, after a SaslHandshake v1, the authentication phase
//! ([`crate::sasl`]) carries each request's `auth_bytes` to the host's SASL
//! exchange and answers with its challenge, or with its final message once
//! the client is authenticated. A failed step is answered
//! SASL_AUTHENTICATION_FAILED with the host's message (it names no secret),
//! after Kafka's 100 ms failed-authentication delay, and the connection
//! closes.
//! Anywhere else it is answered ILLEGAL_SASL_STATE, as Kafka answers it.
//! Gaps: `session_lifetime_ms` is always 0: sessions do not expire and
//! re-authentication (KIP-368, `connections.max.reauth.ms`) is not served,
//! as with Kafka's default; a connection authenticated with a token keeps
//! its role after the token expires, until it closes.

use bytes::Bytes;
use kafka_protocol::{
    messages::{SaslAuthenticateRequest, SaslAuthenticateResponse},
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;
use crate::errors;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

/// A step that succeeded: the server's next message (a challenge, or the
/// last one), and no session lifetime (sessions do not expire).
pub fn step(server_message: Vec<u8>) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(errors::NONE)
        .with_auth_bytes(Bytes::from(server_message))
        .with_session_lifetime_ms(0)
}

/// A step that failed, with `message` for the client.
pub fn failed(message: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(errors::SASL_AUTHENTICATION_FAILED)
        .with_error_message(Some(StrBytes::from_string(message.to_owned())))
}

/// A SaslAuthenticate outside the authentication phase.
pub fn handle(ctx: &RequestContext<'_>, _request: SaslAuthenticateRequest) -> SaslAuthenticateResponse {
    let message = if ctx.listener.security.is_sasl() {
        "SaslAuthenticate request received after successful authentication (re-authentication is not supported)"
    } else {
        "SaslAuthenticate request received on a listener without SASL"
    };
    SaslAuthenticateResponse::default()
        .with_error_code(errors::ILLEGAL_SASL_STATE)
        .with_error_message(Some(StrBytes::from_static_str(message)))
}
