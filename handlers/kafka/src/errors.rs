//! Kafka error codes used by this handler, and how host errors map to them.

use polyport_handler_api::{ErrorKind, HandlerError};

/// The server experienced an unexpected error.
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
/// No error.
pub const NONE: i16 = 0;
/// The requested offset is not within the range of offsets maintained by the server.
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
/// The message contents do not match the message CRC or the message is otherwise corrupt.
pub const CORRUPT_MESSAGE: i16 = 2;
/// INVALID_RECORD: a batch this request cannot hold (Kafka answers a
/// Produce v3+ batch of magic 0 or 1 with it; not retriable).
pub const INVALID_RECORD: i16 = 87;
/// The broker's storage format cannot hold the request (transactions with
/// entryFormat=pulsar).
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
/// A transactional offset commit for the group is still pending
/// (OffsetFetch with `require_stable`); the client retries.
pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
/// The transactional id may not be used by this role.
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
/// This server does not host this topic-partition.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// The request included a message larger than the max message size the server will accept.
pub const MESSAGE_TOO_LARGE: i16 = 10;
/// This broker is not the partition's leader (in a cluster: another broker
/// owns it); the client refreshes its metadata and retries there.
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// This broker is not the coordinator of the group (in a cluster: another
/// broker owns its offsets partition); the client finds the coordinator again.
pub const NOT_COORDINATOR: i16 = 16;
/// The request attempted to perform an operation on an invalid topic.
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
/// The metadata field of an offset commit is too large.
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
/// The coordinator is loading and hence can't process requests.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
/// The coordinator is not available.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// The generation id provided in the request is not the current generation.
pub const ILLEGAL_GENERATION: i16 = 22;
/// The group member's supported protocols are incompatible with those of existing members.
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
/// The configured groupId is invalid.
pub const INVALID_GROUP_ID: i16 = 24;
/// The coordinator is not aware of this member.
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// The session timeout is not within the range allowed by the broker.
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
/// The group is rebalancing, so a rejoin is needed.
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// The role may not do this to the topic ([`crate::authz`]).
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
/// The role may not use the consumer group ([`crate::authz`]).
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
/// The role may not do this to the cluster (a broker config change).
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
/// The version of API is not supported.
pub const UNSUPPORTED_VERSION: i16 = 35;
/// The broker does not serve the SASL mechanism the client asked for
/// (SaslHandshake lists those it serves).
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// A SASL request out of place: before the handshake, or after
/// authentication (re-authentication, KIP-368, is not served).
pub const ILLEGAL_SASL_STATE: i16 = 34;
/// SASL authentication failed (the message says why, naming no secret).
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
/// Topic with this name already exists.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Number of partitions is below 1.
pub const INVALID_PARTITIONS: i16 = 37;
/// Replication factor is below 1 or larger than the number of available brokers.
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
/// A replica assignment that cannot be served.
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
/// Configuration is invalid.
pub const INVALID_CONFIG: i16 = 40;
/// This request is invalid.
pub const INVALID_REQUEST: i16 = 42;
/// The fetch session ID was not found.
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
/// The fetch session epoch is invalid.
pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
/// Disk error when trying to access log file on the disk.
pub const KAFKA_STORAGE_ERROR: i16 = 56;
/// Messages are written to fewer in-sync replicas than required (retriable).
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
/// The broker received an out of order sequence number.
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// The producer's epoch is older than the broker's (it was fenced).
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
/// The group is not empty.
pub const NON_EMPTY_GROUP: i16 = 68;
/// The group id does not exist.
pub const GROUP_ID_NOT_FOUND: i16 = 69;
/// The member must rejoin with the member id it was given.
pub const MEMBER_ID_REQUIRED: i16 = 79;
/// A static member with the same group.instance.id took this member's place.
pub const FENCED_INSTANCE_ID: i16 = 82;
/// The group has members subscribed to this topic.
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
/// The leader epoch in the request is newer than the epoch on the broker.
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
/// A resource the request names does not exist (a user without SCRAM
/// credentials, a namespace an ACL names).
pub const RESOURCE_NOT_FOUND: i16 = 91;
/// A resource named twice in one request (a user described twice, a SCRAM
/// credential altered twice).
pub const DUPLICATE_RESOURCE: i16 = 92;
/// A SCRAM credential that cannot be accepted (an empty user name,
/// iterations out of range, an empty salt).
pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;
/// This endpoint type is not supported yet.
pub const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;

/// The Kafka error for a host service error.
pub fn from_handler(e: &HandlerError) -> i16 {
    match e.kind() {
        ErrorKind::NOT_FOUND => UNKNOWN_TOPIC_OR_PARTITION,
        ErrorKind::ALREADY_EXISTS => TOPIC_ALREADY_EXISTS,
        ErrorKind::INVALID_ARGUMENT => INVALID_TOPIC_EXCEPTION,
        ErrorKind::OUT_OF_RANGE => OFFSET_OUT_OF_RANGE,
        ErrorKind::STORAGE | ErrorKind::DISK_FULL | ErrorKind::CORRUPT => KAFKA_STORAGE_ERROR,
        ErrorKind::NOT_OWNER => NOT_LEADER_OR_FOLLOWER,
        _ => UNKNOWN_SERVER_ERROR,
    }
}
