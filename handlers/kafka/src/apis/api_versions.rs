//! ApiVersions (key 18).
//!
//! Versions: 0-4. The list is derived from [`super::SUPPORTED`]; each
//! API's minimum is Kafka 4's (KIP-896), and Produce is listed from v0 as
//! Kafka 4 lists it ([`super::produce_v0`]).
//! A request at an unsupported version gets a v0 response with
//! UNSUPPORTED_VERSION and the full list, as Kafka does, so the client can
//! retry at a version both sides speak.
//! Gaps: no supported or finalized features are reported.

use bytes::BytesMut;
use kafka_protocol::{
    messages::{api_versions_response::ApiVersion, ApiVersionsRequest, ApiVersionsResponse},
    protocol::VersionRange,
};

use super::{encode_response, RequestContext, SUPPORTED, UNSUPPORTED_VERSION};
use crate::ProtocolError;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(key, served)| {
            let range = super::advertised(*key, *served);
            ApiVersion::default().with_api_key(*key as i16).with_min_version(range.min).with_max_version(range.max)
        })
        .collect()
}

/// Lists every API served and its versions.
pub fn handle(_ctx: &RequestContext<'_>, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys()).with_finalized_features_epoch(-1)
}

/// The v0 answer to an ApiVersions request at a version we do not speak.
pub fn unsupported_version(correlation_id: i32) -> Result<BytesMut, ProtocolError> {
    let body = ApiVersionsResponse::default().with_error_code(UNSUPPORTED_VERSION).with_api_keys(api_keys());
    encode_response(correlation_id, 0, &body)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;

    use super::*;

    /// Each API's lowest version is Kafka 4's (KIP-896, as `kafka-protocol`
    /// carries Kafka's schemas); only Produce is listed lower, from v0.
    #[test]
    fn minimums_are_kafka_4s() {
        for (key, served) in SUPPORTED {
            assert_eq!(served.min, key.valid_versions().min, "{key:?}");
            assert!(served.max <= key.valid_versions().max, "{key:?}");
            let listed = super::super::advertised(*key, *served);
            let min = if *key == ApiKey::Produce { 0 } else { served.min };
            assert_eq!((listed.min, listed.max), (min, served.max), "{key:?}");
        }
    }
}
