//! The Kafka APIs this handler serves, one module per API. Each module declares
//! the versions it implements beside its code; ApiVersions is derived from
//! [`SUPPORTED`], so nothing is advertised that is not served.

pub mod api_versions;
pub mod metadata;

use bytes::{Bytes, BytesMut};
use kafka_protocol::{
    messages::{ApiKey, RequestHeader, ResponseHeader},
    protocol::{Decodable, Encodable, HeaderVersion, VersionRange},
};

use crate::{listeners::KafkaListener, ProtocolError};

/// Every API served, with the versions implemented.
pub const SUPPORTED: &[(ApiKey, VersionRange)] =
    &[(ApiKey::ApiVersions, api_versions::VERSIONS), (ApiKey::Metadata, metadata::VERSIONS)];

/// Kafka's UNSUPPORTED_VERSION error code.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// The versions of `key` this handler serves, if any.
pub fn versions(key: i16) -> Option<(ApiKey, VersionRange)> {
    SUPPORTED.iter().copied().find(|(k, _)| *k as i16 == key)
}

/// Facts about this broker that responses carry.
#[derive(Debug, Clone)]
pub struct BrokerInfo {
    /// This broker's node id (0 on a single broker).
    pub node_id: i32,
    /// The cluster id reported in Metadata (`clusterName`).
    pub cluster_id: String,
}

/// What an API implementation gets besides its request.
#[derive(Debug)]
pub struct RequestContext<'a> {
    /// The decoded request header.
    pub header: &'a RequestHeader,
    /// The request's API version.
    pub version: i16,
    /// The listener the client connected on.
    pub listener: &'a KafkaListener,
    /// This broker.
    pub broker: &'a BrokerInfo,
}

/// Decodes a request of a supported (key, version), runs it and encodes the
/// response frame (size prefix included).
pub fn dispatch(
    key: ApiKey,
    version: i16,
    frame: &mut Bytes,
    listener: &KafkaListener,
    broker: &BrokerInfo,
) -> Result<BytesMut, ProtocolError> {
    let header = RequestHeader::decode(frame, key.request_header_version(version)).map_err(ProtocolError::decode)?;
    let ctx = RequestContext { header: &header, version, listener, broker };
    match key {
        ApiKey::ApiVersions => call(&ctx, frame, api_versions::handle),
        ApiKey::Metadata => call(&ctx, frame, metadata::handle),
        other => Err(ProtocolError::Decode(format!("{other:?} is listed as supported but has no dispatch arm"))),
    }
}

fn call<Req, Resp>(
    ctx: &RequestContext<'_>,
    frame: &mut Bytes,
    handle: fn(&RequestContext<'_>, Req) -> Resp,
) -> Result<BytesMut, ProtocolError>
where
    Req: Decodable,
    Resp: Encodable + HeaderVersion,
{
    let request = Req::decode(frame, ctx.version).map_err(ProtocolError::decode)?;
    encode_response(ctx.header.correlation_id, ctx.version, &handle(ctx, request))
}

/// Encodes `[size][response header][body]`.
pub fn encode_response<Resp: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &Resp,
) -> Result<BytesMut, ProtocolError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = Resp::header_version(version);
    let size = header.compute_size(header_version).map_err(ProtocolError::encode)?
        + body.compute_size(version).map_err(ProtocolError::encode)?;
    let mut out = BytesMut::with_capacity(4 + size);
    out.extend_from_slice(&i32::try_from(size).map_err(ProtocolError::encode)?.to_be_bytes());
    header.encode(&mut out, header_version).map_err(ProtocolError::encode)?;
    body.encode(&mut out, version).map_err(ProtocolError::encode)?;
    Ok(out)
}

/// The reply to an API key or version this handler does not serve: the
/// correlation id and UNSUPPORTED_VERSION. There is no body schema to follow
/// for a request we do not understand; the connection stays open.
pub fn unsupported_response(correlation_id: i32) -> BytesMut {
    let mut out = BytesMut::with_capacity(10);
    out.extend_from_slice(&6i32.to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(&UNSUPPORTED_VERSION.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse};

    use super::*;

    fn listener() -> KafkaListener {
        KafkaListener {
            name: "PLAINTEXT".into(),
            bind: "0.0.0.0:9092".into(),
            advertised_host: "h".into(),
            advertised_port: 9092,
        }
    }

    fn request<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, body: &R) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7);
        let mut out = BytesMut::new();
        header.encode(&mut out, key.request_header_version(version)).expect("header");
        body.encode(&mut out, version).expect("body");
        out.freeze()
    }

    /// Every advertised (key, version) is dispatched and answers with a
    /// response that decodes at that version.
    #[test]
    fn every_advertised_version_round_trips() {
        let broker = BrokerInfo { node_id: 0, cluster_id: "c".into() };
        for &(key, range) in SUPPORTED {
            for version in range.min..=range.max {
                let mut frame = match key {
                    ApiKey::ApiVersions => request(key, version, &ApiVersionsRequest::default()),
                    ApiKey::Metadata => request(key, version, &MetadataRequest::default()),
                    other => panic!("add {other:?} to this test"),
                };
                let mut out = dispatch(key, version, &mut frame, &listener(), &broker).expect("dispatch").freeze();
                let _size = bytes::Buf::get_i32(&mut out);
                let header =
                    ResponseHeader::decode(&mut out, key.response_header_version(version)).expect("response header");
                assert_eq!(header.correlation_id, 7);
                match key {
                    ApiKey::ApiVersions => {
                        let r = ApiVersionsResponse::decode(&mut out, version).expect("decode");
                        assert_eq!(r.api_keys.len(), SUPPORTED.len());
                    }
                    ApiKey::Metadata => {
                        let r = MetadataResponse::decode(&mut out, version).expect("decode");
                        assert_eq!(r.brokers.len(), 1, "v{version}");
                    }
                    _ => unreachable!(),
                }
                assert!(out.is_empty(), "{key:?} v{version}: trailing bytes");
            }
        }
    }
}
