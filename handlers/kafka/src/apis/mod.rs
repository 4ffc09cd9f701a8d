//! The Kafka APIs this handler serves, one module per API. Each module declares
//! the versions it implements beside its code; ApiVersions is derived from
//! [`SUPPORTED`], so nothing is advertised that is not served.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod authorized;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod end_txn;
pub mod fetch;
pub mod fetch_sessions;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod produce_v0;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;
pub mod txn_offset_commit;

use std::{future::Future, sync::Arc};

use bytes::{BufMut as _, Bytes, BytesMut};
use kafka_protocol::{
    messages::{ApiKey, FetchRequest, RequestHeader, ResponseHeader},
    protocol::{Decodable, Encodable, HeaderVersion, VersionRange},
};
use polyport_handler_api::Host;

use crate::{connection::Shared, listeners::KafkaListener, order::Turn, session::Session, ProtocolError};

/// Every API served, with the versions implemented.
pub const SUPPORTED: &[(ApiKey, VersionRange)] = &[
    (ApiKey::Produce, produce::VERSIONS),
    (ApiKey::Fetch, fetch::VERSIONS),
    (ApiKey::ListOffsets, list_offsets::VERSIONS),
    (ApiKey::Metadata, metadata::VERSIONS),
    (ApiKey::ApiVersions, api_versions::VERSIONS),
    // Listed on every listener, as Kafka lists them; served before
    // authentication by `crate::sasl`, refused after it (ILLEGAL_SASL_STATE).
    (ApiKey::SaslHandshake, sasl_handshake::VERSIONS),
    (ApiKey::SaslAuthenticate, sasl_authenticate::VERSIONS),
    (ApiKey::CreateTopics, create_topics::VERSIONS),
    (ApiKey::DeleteTopics, delete_topics::VERSIONS),
    (ApiKey::DeleteRecords, delete_records::VERSIONS),
    (ApiKey::InitProducerId, init_producer_id::VERSIONS),
    (ApiKey::OffsetForLeaderEpoch, offset_for_leader_epoch::VERSIONS),
    (ApiKey::DescribeConfigs, describe_configs::VERSIONS),
    (ApiKey::AlterConfigs, alter_configs::VERSIONS),
    (ApiKey::CreatePartitions, create_partitions::VERSIONS),
    (ApiKey::IncrementalAlterConfigs, incremental_alter_configs::VERSIONS),
    (ApiKey::DescribeCluster, describe_cluster::VERSIONS),
    (ApiKey::FindCoordinator, find_coordinator::VERSIONS),
    (ApiKey::OffsetCommit, offset_commit::VERSIONS),
    (ApiKey::OffsetFetch, offset_fetch::VERSIONS),
    (ApiKey::JoinGroup, join_group::VERSIONS),
    (ApiKey::Heartbeat, heartbeat::VERSIONS),
    (ApiKey::LeaveGroup, leave_group::VERSIONS),
    (ApiKey::SyncGroup, sync_group::VERSIONS),
    (ApiKey::DescribeGroups, describe_groups::VERSIONS),
    (ApiKey::ListGroups, list_groups::VERSIONS),
    (ApiKey::DeleteGroups, delete_groups::VERSIONS),
    (ApiKey::OffsetDelete, offset_delete::VERSIONS),
    (ApiKey::DescribeAcls, describe_acls::VERSIONS),
    (ApiKey::CreateAcls, create_acls::VERSIONS),
    (ApiKey::DeleteAcls, delete_acls::VERSIONS),
    (ApiKey::DescribeUserScramCredentials, describe_user_scram_credentials::VERSIONS),
    (ApiKey::AlterUserScramCredentials, alter_user_scram_credentials::VERSIONS),
    (ApiKey::AddPartitionsToTxn, add_partitions_to_txn::VERSIONS),
    (ApiKey::AddOffsetsToTxn, add_offsets_to_txn::VERSIONS),
    (ApiKey::EndTxn, end_txn::VERSIONS),
    (ApiKey::TxnOffsetCommit, txn_offset_commit::VERSIONS),
    (ApiKey::DescribeTransactions, describe_transactions::VERSIONS),
    (ApiKey::ListTransactions, list_transactions::VERSIONS),
];

/// Kafka's UNSUPPORTED_VERSION error code.
pub const UNSUPPORTED_VERSION: i16 = crate::errors::UNSUPPORTED_VERSION;

/// The versions of `key` this handler serves, if any.
pub fn versions(key: i16) -> Option<(ApiKey, VersionRange)> {
    SUPPORTED.iter().copied().find(|(k, _)| *k as i16 == key)
}

/// The versions ApiVersions lists for `key` served at `served`: the same,
/// except Produce, listed from v0 as Kafka 4 lists it ([`produce_v0`]).
pub fn advertised(key: ApiKey, served: VersionRange) -> VersionRange {
    match key {
        ApiKey::Produce => VersionRange { min: *produce_v0::REFUSED.start(), max: served.max },
        _ => served,
    }
}

/// The message of a TOPIC_AUTHORIZATION_FAILED answer, as Kafka words it.
pub fn not_authorized(topic: &str) -> String {
    format!("Not authorized to access topics: [{topic}]")
}

/// Facts about this broker that responses carry.
#[derive(Debug, Clone)]
pub struct BrokerInfo {
    /// The cluster id reported in Metadata (`clusterName`).
    pub cluster_id: String,
    /// Whether the host creates missing topics on first use (`allowAutoTopicCreation`).
    pub auto_create_topics: bool,
    /// `defaultNumPartitions`, reported as `num.partitions`.
    pub default_partitions: i32,
    /// `kafkaAcceptAnyReplicationFactor`: CreateTopics takes any replication
    /// factor (KoP's behaviour) instead of refusing more than 1.
    pub any_replication_factor: bool,
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
    /// The client's address as Kafka shows it (`/127.0.0.1`).
    pub client_host: &'a str,
    /// What the handler's connections share (config, topic mapper, host).
    pub shared: &'a Shared,
    /// Who the connection's requests come from.
    pub session: &'a Session,
    /// The request's authorization answers ([`crate::authz`]).
    pub authz: crate::authz::Memo,
}

impl RequestContext<'_> {
    /// The host services; `None` only when the handler runs without a host
    /// (the in-process benchmark), where storage APIs answer with errors.
    pub fn host(&self) -> Option<&Host> {
        self.shared.host.get()
    }
}

/// Decodes a request of a supported (key, version), runs it and encodes the
/// response frame (size prefix included); `None` when no response is due
/// (Produce with acks=0). A Produce places its appends in `turn`, its
/// connection's order ([`crate::order`]); alone when `None`.
#[allow(clippy::too_many_arguments)] // each is the request's or its connection's
pub async fn dispatch(
    key: ApiKey,
    version: i16,
    mut frame: Bytes,
    shared: Arc<Shared>,
    listener: Arc<KafkaListener>,
    client_host: Arc<str>,
    session: Arc<Session>,
    turn: Option<Turn>,
) -> Result<Option<Response>, ProtocolError> {
    let header =
        RequestHeader::decode(&mut frame, key.request_header_version(version)).map_err(ProtocolError::decode)?;
    let ctx = RequestContext {
        header: &header,
        version,
        listener: &listener,
        client_host: &client_host,
        shared: &shared,
        session: &session,
        authz: crate::authz::Memo::default(),
    };
    let frame = &mut frame;
    match key {
        ApiKey::ApiVersions => call(&ctx, frame, |c, r| std::future::ready(api_versions::handle(c, r))).await,
        ApiKey::SaslHandshake => call(&ctx, frame, |c, r| std::future::ready(sasl_handshake::handle(c, r))).await,
        ApiKey::SaslAuthenticate => call(&ctx, frame, |c, r| std::future::ready(sasl_authenticate::handle(c, r))).await,
        ApiKey::Metadata => call(&ctx, frame, metadata::handle).await,
        ApiKey::Produce => produce::serve(&ctx, frame, turn.unwrap_or_else(Turn::first)).await,
        ApiKey::Fetch => {
            let request = FetchRequest::decode(frame, version).map_err(ProtocolError::decode)?;
            let (response, splices) = fetch::handle(&ctx, request).await;
            encode_chunked(header.correlation_id, version, &response, splices).map(Some)
        }
        ApiKey::ListOffsets => call(&ctx, frame, list_offsets::handle).await,
        ApiKey::CreateTopics => call(&ctx, frame, create_topics::handle).await,
        ApiKey::DeleteTopics => call(&ctx, frame, delete_topics::handle).await,
        ApiKey::FindCoordinator => call(&ctx, frame, find_coordinator::handle).await,
        ApiKey::OffsetCommit => call(&ctx, frame, offset_commit::handle).await,
        ApiKey::OffsetFetch => call(&ctx, frame, offset_fetch::handle).await,
        ApiKey::JoinGroup => call(&ctx, frame, join_group::handle).await,
        ApiKey::SyncGroup => call(&ctx, frame, sync_group::handle).await,
        ApiKey::Heartbeat => call(&ctx, frame, heartbeat::handle).await,
        ApiKey::LeaveGroup => call(&ctx, frame, leave_group::handle).await,
        ApiKey::DescribeGroups => call(&ctx, frame, describe_groups::handle).await,
        ApiKey::ListGroups => call(&ctx, frame, list_groups::handle).await,
        ApiKey::DeleteGroups => call(&ctx, frame, delete_groups::handle).await,
        ApiKey::OffsetDelete => call(&ctx, frame, offset_delete::handle).await,
        ApiKey::DeleteRecords => call(&ctx, frame, delete_records::handle).await,
        ApiKey::InitProducerId => call(&ctx, frame, init_producer_id::handle).await,
        ApiKey::OffsetForLeaderEpoch => call(&ctx, frame, offset_for_leader_epoch::handle).await,
        ApiKey::DescribeConfigs => call(&ctx, frame, describe_configs::handle).await,
        ApiKey::AlterConfigs => call(&ctx, frame, alter_configs::handle).await,
        ApiKey::CreatePartitions => call(&ctx, frame, create_partitions::handle).await,
        ApiKey::IncrementalAlterConfigs => call(&ctx, frame, incremental_alter_configs::handle).await,
        ApiKey::DescribeCluster => call(&ctx, frame, describe_cluster::handle).await,
        ApiKey::DescribeAcls => call(&ctx, frame, describe_acls::handle).await,
        ApiKey::CreateAcls => call(&ctx, frame, create_acls::handle).await,
        ApiKey::DeleteAcls => call(&ctx, frame, delete_acls::handle).await,
        ApiKey::DescribeUserScramCredentials => call(&ctx, frame, describe_user_scram_credentials::handle).await,
        ApiKey::AlterUserScramCredentials => call(&ctx, frame, alter_user_scram_credentials::handle).await,
        ApiKey::AddPartitionsToTxn => call(&ctx, frame, add_partitions_to_txn::handle).await,
        ApiKey::AddOffsetsToTxn => call(&ctx, frame, add_offsets_to_txn::handle).await,
        ApiKey::EndTxn => call(&ctx, frame, end_txn::handle).await,
        ApiKey::TxnOffsetCommit => call(&ctx, frame, txn_offset_commit::handle).await,
        ApiKey::DescribeTransactions => call(&ctx, frame, describe_transactions::handle).await,
        ApiKey::ListTransactions => call(&ctx, frame, list_transactions::handle).await,
        other => Err(ProtocolError::Decode(format!("{other:?} is listed as supported but has no dispatch arm"))),
    }
}

/// Whether this broker coordinates transactions
/// (`kafkaTransactionCoordinatorEnabled`, and entryFormat=kafka: converted
/// entries keep no transaction).
pub(crate) fn transactions_enabled(ctx: &RequestContext<'_>) -> bool {
    ctx.shared.coordinator.config().transactions && ctx.shared.entry_format == crate::EntryFormat::Kafka
}

/// A transaction error code as the request's version knows it:
/// PRODUCER_FENCED exists from InitProducerId v4 and the other transaction
/// APIs' v2 (KIP-588); older clients get INVALID_PRODUCER_EPOCH, as from
/// Kafka.
pub(crate) fn txn_error(ctx: &RequestContext<'_>, code: i16) -> i16 {
    let fenced_from = if ctx.header.request_api_key == ApiKey::InitProducerId as i16 { 4 } else { 2 };
    if code == crate::transactions::PRODUCER_FENCED && ctx.version < fenced_from {
        crate::errors::INVALID_PRODUCER_EPOCH
    } else {
        code
    }
}

/// Counts the partitions answered with an error, by code.
pub(crate) fn count_partition_errors(ctx: &RequestContext<'_>, codes: impl Iterator<Item = i16>) {
    let mut by_code: Vec<(i16, u64)> = Vec::new();
    for code in codes.filter(|c| *c != crate::errors::NONE) {
        match by_code.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => by_code.push((code, 1)),
        }
    }
    let api = kafka_protocol::messages::ApiKey::try_from(ctx.header.request_api_key).ok();
    for (code, count) in by_code {
        if let Some(api) = api {
            ctx.shared.metrics().partition_errors(api, ctx.version, code, count);
        }
    }
}

async fn call<'c, Req, Resp, F, Fut>(
    ctx: &'c RequestContext<'c>,
    frame: &mut Bytes,
    handle: F,
) -> Result<Option<Response>, ProtocolError>
where
    Req: Decodable,
    Resp: Encodable + HeaderVersion,
    F: FnOnce(&'c RequestContext<'c>, Req) -> Fut,
    Fut: Future<Output = Resp>,
{
    let request = Req::decode(frame, ctx.version).map_err(ProtocolError::decode)?;
    let response = handle(ctx, request).await;
    encode_response(ctx.header.correlation_id, ctx.version, &response).map(|r| Some(Response::Whole(r)))
}

/// A response frame (size prefix included), as it is written: one buffer,
/// or chunks of which some reference stored bytes (a Fetch's batches).
#[derive(Debug)]
pub enum Response {
    /// One buffer.
    Whole(BytesMut),
    /// Chunks, written in order.
    Chunks(Vec<Bytes>),
}

impl Response {
    /// The response's chunks, in order.
    pub fn chunks(&self) -> Vec<&[u8]> {
        match self {
            Self::Whole(b) => vec![&b[..]],
            Self::Chunks(c) => c.iter().map(|c| &c[..]).collect(),
        }
    }

    /// The whole response in one buffer (a copy when it is in chunks).
    pub fn to_bytes(&self) -> BytesMut {
        let mut out = BytesMut::new();
        for c in self.chunks() {
            out.extend_from_slice(c);
        }
        out
    }
}

/// [`encode_response`] into chunks: the partitions' records stand-ins are
/// replaced by the stored bytes they stand for ([`crate::chunked`]).
pub fn encode_chunked<Resp: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &Resp,
    splices: crate::chunked::Splices,
) -> Result<Response, ProtocolError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = Resp::header_version(version);
    let size = header.compute_size(header_version).map_err(ProtocolError::encode)?
        + body.compute_size(version).map_err(ProtocolError::encode)?;
    let mut out = splices.into_buf(4 * 1024);
    out.put_slice(&i32::try_from(size).map_err(ProtocolError::encode)?.to_be_bytes());
    header.encode(&mut out, header_version).map_err(ProtocolError::encode)?;
    body.encode(&mut out, version).map_err(ProtocolError::encode)?;
    out.finish().map(Response::Chunks).map_err(ProtocolError::Encode)
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

/// Request frames and response decoding for the handler's unit tests.
#[cfg(test)]
pub(crate) mod frames {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::{
        messages::{ApiKey, RequestHeader, ResponseHeader},
        protocol::{Decodable, Encodable, HeaderVersion},
    };

    /// A request frame (header and body, no size prefix), as `dispatch` takes it.
    pub fn request<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, body: &R) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7);
        let mut out = BytesMut::new();
        header.encode(&mut out, key.request_header_version(version)).expect("header");
        body.encode(&mut out, version).expect("body");
        out.freeze()
    }

    /// The body of a response frame, which must hold nothing more.
    pub fn response<Resp: Decodable>(response: &super::Response, key: ApiKey, version: i16) -> Resp {
        let mut out = response.to_bytes().freeze();
        let _size = bytes::Buf::get_i32(&mut out);
        ResponseHeader::decode(&mut out, key.response_header_version(version)).expect("header");
        let body = Resp::decode(&mut out, version).expect("decode");
        assert!(out.is_empty(), "{key:?} v{version}: trailing bytes");
        body
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use kafka_protocol::{messages::*, protocol::StrBytes};

    use super::*;
    use crate::errors;

    fn listener() -> Arc<KafkaListener> {
        Arc::new(KafkaListener {
            name: "PLAINTEXT".into(),
            bind: "0.0.0.0:9092".into(),
            advertised_host: "h".into(),
            advertised_port: 9092,
            security: crate::listeners::SecurityProtocol::Plaintext,
        })
    }

    fn anonymous() -> Arc<Session> {
        Arc::new(Session::anonymous())
    }

    fn request<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, body: &R) -> Bytes {
        super::frames::request(key, version, body)
    }

    fn check<R: Decodable>(out: &mut Bytes, version: i16) {
        R::decode(out, version).expect("decode");
    }

    /// Sends `body` through `dispatch` (no host) and decodes the response.
    fn round_trip<Req: Encodable + HeaderVersion, Resp: Decodable>(key: ApiKey, version: i16, body: &Req) -> Resp {
        let shared = Arc::new(Shared::for_tests());
        let out = dispatch(
            key,
            version,
            request(key, version, body),
            shared,
            listener(),
            "/127.0.0.1".into(),
            anonymous(),
            None,
        )
        .now_or_never()
        .expect("completes without a host")
        .expect("dispatch")
        .expect("a response");
        super::frames::response(&out, key, version)
    }

    /// Responses with content encode at every version: the fields of later
    /// versions (config types, documentation, endpoint type) only where they exist.
    #[test]
    fn populated_responses_encode_at_every_version() {
        use describe_configs_request::DescribeConfigsResource;
        let s = StrBytes::from_static_str;
        for version in describe_configs::VERSIONS.min..=describe_configs::VERSIONS.max {
            let resources = vec![
                DescribeConfigsResource::default().with_resource_type(4).with_resource_name(s("0")),
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s(""))
                    .with_configuration_keys(Some(vec![s("message.max.bytes"), s("no.such.key")])),
                DescribeConfigsResource::default().with_resource_type(4).with_resource_name(s("1")),
                DescribeConfigsResource::default().with_resource_type(2).with_resource_name(s("t")),
                DescribeConfigsResource::default().with_resource_type(3).with_resource_name(s("g")),
            ];
            let request = DescribeConfigsRequest::default()
                .with_resources(resources)
                .with_include_synonyms(true)
                .with_include_documentation(version >= 3);
            let r: DescribeConfigsResponse = round_trip(ApiKey::DescribeConfigs, version, &request);
            let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
            assert_eq!(codes, [0, 0, 42, 56, 42], "v{version}");
            let names: Vec<&str> = r.results[0].configs.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(
                names,
                [
                    "message.max.bytes",
                    "num.partitions",
                    "default.replication.factor",
                    "log.message.timestamp.type",
                    "auto.create.topics.enable"
                ]
            );
            let max = &r.results[1].configs;
            assert_eq!(max.len(), 1);
            assert_eq!(max[0].value.as_deref(), Some("1048576"));
            assert!(max[0].read_only);
            assert_eq!(max[0].synonyms.len(), 1);
            if version >= 3 {
                assert_eq!(max[0].config_type, 3, "INT");
                assert!(max[0].documentation.as_deref().is_some_and(|d| d.contains("maxMessageSize")));
            }
        }
        for version in describe_cluster::VERSIONS.min..=describe_cluster::VERSIONS.max {
            let r: DescribeClusterResponse =
                round_trip(ApiKey::DescribeCluster, version, &DescribeClusterRequest::default());
            assert_eq!((r.error_code, r.cluster_id.as_str(), r.controller_id.0), (0, "test", 0));
            assert_eq!(r.brokers.len(), 1);
            assert_eq!((r.brokers[0].host.as_str(), r.brokers[0].port), ("h", 9092));
            assert_eq!(r.endpoint_type, 1);
        }
        let controllers = DescribeClusterRequest::default().with_endpoint_type(2);
        let r: DescribeClusterResponse = round_trip(ApiKey::DescribeCluster, 1, &controllers);
        assert_eq!((r.error_code, r.endpoint_type, r.brokers.len()), (errors::UNSUPPORTED_ENDPOINT_TYPE, 2, 0));
        for version in alter_configs::VERSIONS.min..=alter_configs::VERSIONS.max {
            let request = AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default().with_resource_type(4).with_resource_name(s("0")),
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_configs(vec![alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("-2")))]),
            ]);
            let r: AlterConfigsResponse = round_trip(ApiKey::AlterConfigs, version, &request);
            let codes: Vec<i16> = r.responses.iter().map(|r| r.error_code).collect();
            assert_eq!(codes, [errors::INVALID_REQUEST, errors::INVALID_CONFIG]);
            assert!(r.responses[0].error_message.as_deref().is_some_and(|m| m.contains("broker.conf")));
        }
        for version in incremental_alter_configs::VERSIONS.min..=incremental_alter_configs::VERSIONS.max {
            use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
            let config = |name, op| AlterableConfig::default().with_name(s(name)).with_config_operation(op);
            let resource = |configs| {
                AlterConfigsResource::default().with_resource_type(2).with_resource_name(s("t")).with_configs(configs)
            };
            let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
                resource(vec![config("retention.ms", 2)]),
                resource(vec![config("no.such.config", 0)]),
                resource(vec![config("retention.ms", 1), config("retention.ms", 1)]),
            ]);
            let r: IncrementalAlterConfigsResponse = round_trip(ApiKey::IncrementalAlterConfigs, version, &request);
            let codes: Vec<i16> = r.responses.iter().map(|r| r.error_code).collect();
            assert_eq!(codes, [errors::INVALID_REQUEST, errors::INVALID_CONFIG, errors::INVALID_REQUEST]);
        }
        for version in create_partitions::VERSIONS.min..=create_partitions::VERSIONS.max {
            use create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
            let topic = |name| CreatePartitionsTopic::default().with_name(TopicName(s(name))).with_count(3);
            let request = CreatePartitionsRequest::default().with_topics(vec![
                topic("a").with_assignments(Some(vec![CreatePartitionsAssignment::default()])),
                topic("b"),
                topic("b"),
                topic("c"),
            ]);
            let r: CreatePartitionsResponse = round_trip(ApiKey::CreatePartitions, version, &request);
            let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
            // An assignment naming no broker (not this one alone); a topic named twice; no storage.
            assert_eq!(codes, [errors::INVALID_REPLICA_ASSIGNMENT, 42, 42, 56]);
        }
    }

    /// Every advertised (key, version) is dispatched and answers with a
    /// response that decodes at that version, even without a host.
    #[test]
    fn every_advertised_version_round_trips() {
        let shared = Arc::new(Shared::for_tests());
        for &(key, range) in SUPPORTED {
            for version in range.min..=range.max {
                let frame = match key {
                    ApiKey::ApiVersions => request(key, version, &ApiVersionsRequest::default()),
                    ApiKey::SaslHandshake => request(key, version, &SaslHandshakeRequest::default()),
                    ApiKey::SaslAuthenticate => request(key, version, &SaslAuthenticateRequest::default()),
                    ApiKey::Metadata => request(key, version, &MetadataRequest::default()),
                    ApiKey::Produce => request(key, version, &ProduceRequest::default().with_acks(1)),
                    ApiKey::Fetch => request(key, version, &FetchRequest::default()),
                    ApiKey::ListOffsets => request(key, version, &ListOffsetsRequest::default()),
                    ApiKey::CreateTopics => request(key, version, &CreateTopicsRequest::default()),
                    ApiKey::DeleteTopics => request(key, version, &DeleteTopicsRequest::default()),
                    ApiKey::FindCoordinator => request(key, version, &FindCoordinatorRequest::default()),
                    ApiKey::OffsetCommit => request(key, version, &OffsetCommitRequest::default()),
                    ApiKey::OffsetFetch => request(key, version, &OffsetFetchRequest::default()),
                    ApiKey::InitProducerId => request(key, version, &InitProducerIdRequest::default()),
                    ApiKey::DeleteRecords => request(key, version, &DeleteRecordsRequest::default()),
                    ApiKey::OffsetForLeaderEpoch => request(key, version, &OffsetForLeaderEpochRequest::default()),
                    ApiKey::DescribeConfigs => request(key, version, &DescribeConfigsRequest::default()),
                    ApiKey::AlterConfigs => request(key, version, &AlterConfigsRequest::default()),
                    ApiKey::CreatePartitions => request(key, version, &CreatePartitionsRequest::default()),
                    ApiKey::IncrementalAlterConfigs => {
                        request(key, version, &IncrementalAlterConfigsRequest::default())
                    }
                    ApiKey::DescribeCluster => request(key, version, &DescribeClusterRequest::default()),
                    ApiKey::JoinGroup => request(key, version, &JoinGroupRequest::default()),
                    ApiKey::SyncGroup => request(key, version, &SyncGroupRequest::default()),
                    ApiKey::Heartbeat => request(key, version, &HeartbeatRequest::default()),
                    ApiKey::LeaveGroup => request(key, version, &LeaveGroupRequest::default()),
                    ApiKey::DescribeGroups => request(
                        key,
                        version,
                        &DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_static_str("g"))]),
                    ),
                    ApiKey::ListGroups => request(key, version, &ListGroupsRequest::default()),
                    ApiKey::DeleteGroups => request(
                        key,
                        version,
                        &DeleteGroupsRequest::default()
                            .with_groups_names(vec![GroupId(StrBytes::from_static_str("g"))]),
                    ),
                    ApiKey::OffsetDelete => request(key, version, &OffsetDeleteRequest::default()),
                    ApiKey::DescribeAcls => request(
                        key,
                        version,
                        &DescribeAclsRequest::default()
                            .with_resource_name_filter(None)
                            .with_principal_filter(None)
                            .with_host_filter(None)
                            .with_resource_type_filter(1)
                            .with_pattern_type_filter(1)
                            .with_operation(1)
                            .with_permission_type(1),
                    ),
                    ApiKey::CreateAcls => request(
                        key,
                        version,
                        &CreateAclsRequest::default().with_creations(vec![create_acls_request::AclCreation::default()]),
                    ),
                    ApiKey::DeleteAcls => request(
                        key,
                        version,
                        &DeleteAclsRequest::default()
                            .with_filters(vec![delete_acls_request::DeleteAclsFilter::default()]),
                    ),
                    ApiKey::DescribeUserScramCredentials => request(
                        key,
                        version,
                        &DescribeUserScramCredentialsRequest::default()
                            .with_users(Some(vec![describe_user_scram_credentials_request::UserName::default()
                                .with_name(StrBytes::from_static_str("alice"))])),
                    ),
                    ApiKey::AlterUserScramCredentials => request(
                        key,
                        version,
                        &AlterUserScramCredentialsRequest::default().with_deletions(vec![
                            alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                                .with_name(StrBytes::from_static_str("alice"))
                                .with_mechanism(1),
                        ]),
                    ),
                    ApiKey::AddPartitionsToTxn => request(key, version, &AddPartitionsToTxnRequest::default()),
                    ApiKey::AddOffsetsToTxn => request(key, version, &AddOffsetsToTxnRequest::default()),
                    ApiKey::EndTxn => request(key, version, &EndTxnRequest::default()),
                    ApiKey::TxnOffsetCommit => request(key, version, &TxnOffsetCommitRequest::default()),
                    ApiKey::DescribeTransactions => request(
                        key,
                        version,
                        &DescribeTransactionsRequest::default()
                            .with_transactional_ids(vec![TransactionalId(StrBytes::from_static_str("tx"))]),
                    ),
                    ApiKey::ListTransactions => request(key, version, &ListTransactionsRequest::default()),
                    other => panic!("add {other:?} to this test"),
                };
                let out = dispatch(
                    key,
                    version,
                    frame,
                    Arc::clone(&shared),
                    listener(),
                    "/127.0.0.1".into(),
                    anonymous(),
                    None,
                )
                .now_or_never()
                .expect("completes without a host")
                .expect("dispatch")
                .expect("a response");
                let mut out = out.to_bytes().freeze();
                let _size = bytes::Buf::get_i32(&mut out);
                let header = ResponseHeader::decode(&mut out, key.response_header_version(version)).expect("header");
                assert_eq!(header.correlation_id, 7);
                match key {
                    ApiKey::ApiVersions => check::<ApiVersionsResponse>(&mut out, version),
                    ApiKey::SaslHandshake => {
                        let r = SaslHandshakeResponse::decode(&mut out, version).expect("decode");
                        assert_eq!((r.error_code, r.mechanisms.len()), (errors::ILLEGAL_SASL_STATE, 0));
                    }
                    ApiKey::SaslAuthenticate => {
                        let r = SaslAuthenticateResponse::decode(&mut out, version).expect("decode");
                        assert_eq!(r.error_code, errors::ILLEGAL_SASL_STATE);
                    }
                    ApiKey::Metadata => check::<MetadataResponse>(&mut out, version),
                    ApiKey::Produce => check::<ProduceResponse>(&mut out, version),
                    ApiKey::Fetch => check::<FetchResponse>(&mut out, version),
                    ApiKey::ListOffsets => check::<ListOffsetsResponse>(&mut out, version),
                    ApiKey::CreateTopics => check::<CreateTopicsResponse>(&mut out, version),
                    ApiKey::DeleteTopics => check::<DeleteTopicsResponse>(&mut out, version),
                    ApiKey::FindCoordinator => check::<FindCoordinatorResponse>(&mut out, version),
                    ApiKey::OffsetCommit => check::<OffsetCommitResponse>(&mut out, version),
                    ApiKey::OffsetFetch => check::<OffsetFetchResponse>(&mut out, version),
                    ApiKey::InitProducerId => check::<InitProducerIdResponse>(&mut out, version),
                    ApiKey::DeleteRecords => check::<DeleteRecordsResponse>(&mut out, version),
                    ApiKey::OffsetForLeaderEpoch => check::<OffsetForLeaderEpochResponse>(&mut out, version),
                    ApiKey::DescribeConfigs => check::<DescribeConfigsResponse>(&mut out, version),
                    ApiKey::AlterConfigs => check::<AlterConfigsResponse>(&mut out, version),
                    ApiKey::CreatePartitions => check::<CreatePartitionsResponse>(&mut out, version),
                    ApiKey::IncrementalAlterConfigs => check::<IncrementalAlterConfigsResponse>(&mut out, version),
                    ApiKey::DescribeCluster => check::<DescribeClusterResponse>(&mut out, version),
                    ApiKey::JoinGroup => check::<JoinGroupResponse>(&mut out, version),
                    ApiKey::SyncGroup => check::<SyncGroupResponse>(&mut out, version),
                    ApiKey::Heartbeat => check::<HeartbeatResponse>(&mut out, version),
                    ApiKey::LeaveGroup => check::<LeaveGroupResponse>(&mut out, version),
                    ApiKey::DescribeGroups => check::<DescribeGroupsResponse>(&mut out, version),
                    ApiKey::ListGroups => check::<ListGroupsResponse>(&mut out, version),
                    ApiKey::DeleteGroups => check::<DeleteGroupsResponse>(&mut out, version),
                    ApiKey::OffsetDelete => check::<OffsetDeleteResponse>(&mut out, version),
                    // Without a host: UNKNOWN_SERVER_ERROR; an invalid ACL or filter: INVALID_REQUEST.
                    ApiKey::DescribeAcls => {
                        let r = DescribeAclsResponse::decode(&mut out, version).expect("decode");
                        assert_eq!(r.error_code, errors::UNKNOWN_SERVER_ERROR);
                    }
                    ApiKey::CreateAcls => {
                        let r = CreateAclsResponse::decode(&mut out, version).expect("decode");
                        assert_eq!(r.results[0].error_code, errors::INVALID_REQUEST);
                    }
                    ApiKey::DeleteAcls => {
                        let r = DeleteAclsResponse::decode(&mut out, version).expect("decode");
                        assert_eq!(r.filter_results[0].error_code, errors::INVALID_REQUEST);
                    }
                    ApiKey::DescribeUserScramCredentials => {
                        let r = DescribeUserScramCredentialsResponse::decode(&mut out, version).expect("decode");
                        assert_eq!((r.error_code, r.results.len()), (errors::UNKNOWN_SERVER_ERROR, 1));
                    }
                    ApiKey::AlterUserScramCredentials => {
                        let r = AlterUserScramCredentialsResponse::decode(&mut out, version).expect("decode");
                        assert_eq!(r.results[0].error_code, errors::UNKNOWN_SERVER_ERROR);
                    }
                    ApiKey::AddPartitionsToTxn => check::<AddPartitionsToTxnResponse>(&mut out, version),
                    ApiKey::AddOffsetsToTxn => check::<AddOffsetsToTxnResponse>(&mut out, version),
                    ApiKey::TxnOffsetCommit => check::<TxnOffsetCommitResponse>(&mut out, version),
                    // The coordinator is not running without a host.
                    ApiKey::EndTxn => {
                        let r = EndTxnResponse::decode(&mut out, version).expect("decode");
                        assert_eq!(r.error_code, errors::COORDINATOR_NOT_AVAILABLE);
                    }
                    ApiKey::DescribeTransactions => {
                        let r = DescribeTransactionsResponse::decode(&mut out, version).expect("decode");
                        assert_eq!(r.transaction_states[0].error_code, errors::COORDINATOR_NOT_AVAILABLE);
                    }
                    ApiKey::ListTransactions => {
                        let r = ListTransactionsResponse::decode(&mut out, version).expect("decode");
                        assert_eq!(r.error_code, errors::COORDINATOR_NOT_AVAILABLE);
                    }
                    _ => unreachable!(),
                }
                assert!(out.is_empty(), "{key:?} v{version}: trailing bytes");
            }
        }
    }
}
