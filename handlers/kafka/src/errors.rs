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
/// This server does not host this topic-partition.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// The request included a message larger than the max message size the server will accept.
pub const MESSAGE_TOO_LARGE: i16 = 10;
/// The request attempted to perform an operation on an invalid topic.
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
/// The version of API is not supported.
pub const UNSUPPORTED_VERSION: i16 = 35;
/// Topic with this name already exists.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Number of partitions is below 1.
pub const INVALID_PARTITIONS: i16 = 37;
/// Replication factor is below 1 or larger than the number of available brokers.
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
/// Configuration is invalid.
pub const INVALID_CONFIG: i16 = 40;
/// This request is invalid.
pub const INVALID_REQUEST: i16 = 42;
/// The message format version on the broker does not support the request.
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
/// The fetch session ID was not found.
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
/// The fetch session epoch is invalid.
pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
/// Disk error when trying to access log file on the disk.
pub const KAFKA_STORAGE_ERROR: i16 = 56;
/// The leader epoch in the request is newer than the epoch on the broker.
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
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
        _ => UNKNOWN_SERVER_ERROR,
    }
}
