//! SaslHandshake (key 17).
//!
//! Versions: 0-1. On a `SASL_*` listener it is the first request after any
//! ApiVersions, served by the authentication phase ([`crate::sasl`]) before
//! the pipelined loop starts: a mechanism among the enabled ones
//! (`saslAllowedMechanisms` that the host's providers offer) is answered
//! NONE with the list; another is answered UNSUPPORTED_SASL_MECHANISM with
//! the list, and the connection closes, as Kafka closes it. After v0 the
//! client sends raw SASL tokens (size-prefixed, no Kafka header); after v1,
//! SaslAuthenticate requests.
//! Anywhere else (a listener without SASL, or a connection already
//! authenticated) it is answered ILLEGAL_SASL_STATE with no mechanisms, as
//! Kafka's `KafkaApis` answers it.
//! Gaps: re-authentication (KIP-368) is not served, so a handshake after
//! authentication is refused rather than starting a new exchange.

use kafka_protocol::{
    messages::{SaslHandshakeRequest, SaslHandshakeResponse},
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;
use crate::errors;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

/// The authentication phase's answer to `request` given the `enabled`
/// mechanisms, and the mechanism to run when the client's is one of them
/// (names are compared exactly, as Kafka compares them).
pub fn negotiate<'m>(
    request: &SaslHandshakeRequest,
    enabled: &'m [String],
) -> (SaslHandshakeResponse, Option<&'m str>) {
    let chosen = enabled.iter().find(|m| m.as_str() == request.mechanism.as_str()).map(String::as_str);
    let code = if chosen.is_some() { errors::NONE } else { errors::UNSUPPORTED_SASL_MECHANISM };
    let mechanisms = enabled.iter().map(|m| StrBytes::from_string(m.clone())).collect();
    (SaslHandshakeResponse::default().with_error_code(code).with_mechanisms(mechanisms), chosen)
}

/// A handshake outside the authentication phase.
pub fn handle(_ctx: &RequestContext<'_>, _request: SaslHandshakeRequest) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(errors::ILLEGAL_SASL_STATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(mechanism: &'static str) -> SaslHandshakeRequest {
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism))
    }

    #[test]
    fn the_answer_lists_the_enabled_mechanisms() {
        let enabled = vec!["PLAIN".to_owned(), "OAUTHBEARER".to_owned()];
        let (response, chosen) = negotiate(&request("OAUTHBEARER"), &enabled);
        assert_eq!(chosen, Some("OAUTHBEARER"));
        assert_eq!(response.error_code, errors::NONE);
        let listed: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
        assert_eq!(listed, ["PLAIN", "OAUTHBEARER"]);

        for other in ["SCRAM-SHA-256", "plain", ""] {
            let (response, chosen) = negotiate(&request(other), &enabled);
            assert_eq!((chosen, response.error_code), (None, errors::UNSUPPORTED_SASL_MECHANISM), "{other:?}");
            assert_eq!(response.mechanisms.len(), 2);
        }
        let (response, chosen) = negotiate(&request("PLAIN"), &[]);
        assert_eq!((chosen, response.error_code, response.mechanisms.len()), (None, 33, 0));
    }
}
