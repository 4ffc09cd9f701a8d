//! The Pulsar binary protocol's messages, as prost types, committed so that
//! the host needs neither the `pulsar` client crate (with its TLS stack)
//! nor `protoc` to build.
//!
//! This is prost-build's output (prost 0.13) for Apache Pulsar's
//! `PulsarApi.proto` (Apache License 2.0), protocol version 19: the copy the
//! `pulsar` crate 6.9.1 ships and compiles in its build script. Only the
//! paths were shortened (`::prost::alloc::string::String` to `String`, and
//! so on), comments tidied, and the tests below added. Names, tags, labels,
//! defaults and derives are prost-build's, so the accessors prost-derive
//! writes (`compression()`, `sub_type()`, `durable()`, ...) are the same.
//!
//! To regenerate (for a newer protocol version): build the tests crate,
//! which still uses the `pulsar` crate as a real client
//! (`cargo build -p polyport-tests`), take
//! `target/debug/build/pulsar-*/out/pulsar.proto.rs`, shorten the paths as
//! above, keep this header and the tests, and run `cargo fmt`. The tests
//! encode commands and metadata and compare the bytes with ones worked out
//! by hand from the tags, then decode and re-encode them.

// Most fields have no doc: PulsarApi.proto has none for them.
#![allow(missing_docs)]

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Schema {
    #[prost(string, required, tag = "1")]
    pub name: String,
    #[prost(bytes = "vec", required, tag = "3")]
    pub schema_data: Vec<u8>,
    #[prost(enumeration = "schema::Type", required, tag = "4")]
    pub r#type: i32,
    #[prost(message, repeated, tag = "5")]
    pub properties: Vec<KeyValue>,
}
/// Nested message and enum types in `Schema`.
pub mod schema {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum Type {
        None = 0,
        String = 1,
        Json = 2,
        Protobuf = 3,
        Avro = 4,
        Bool = 5,
        Int8 = 6,
        Int16 = 7,
        Int32 = 8,
        Int64 = 9,
        Float = 10,
        Double = 11,
        Date = 12,
        Time = 13,
        Timestamp = 14,
        KeyValue = 15,
        Instant = 16,
        LocalDate = 17,
        LocalTime = 18,
        LocalDateTime = 19,
        ProtobufNative = 20,
    }
    impl Type {
        /// The name of this value in PulsarApi.proto.
        pub fn as_str_name(&self) -> &'static str {
            match self {
                Self::None => "None",
                Self::String => "String",
                Self::Json => "Json",
                Self::Protobuf => "Protobuf",
                Self::Avro => "Avro",
                Self::Bool => "Bool",
                Self::Int8 => "Int8",
                Self::Int16 => "Int16",
                Self::Int32 => "Int32",
                Self::Int64 => "Int64",
                Self::Float => "Float",
                Self::Double => "Double",
                Self::Date => "Date",
                Self::Time => "Time",
                Self::Timestamp => "Timestamp",
                Self::KeyValue => "KeyValue",
                Self::Instant => "Instant",
                Self::LocalDate => "LocalDate",
                Self::LocalTime => "LocalTime",
                Self::LocalDateTime => "LocalDateTime",
                Self::ProtobufNative => "ProtobufNative",
            }
        }
        /// The value with this name in PulsarApi.proto, if any.
        pub fn from_str_name(value: &str) -> Option<Self> {
            match value {
                "None" => Some(Self::None),
                "String" => Some(Self::String),
                "Json" => Some(Self::Json),
                "Protobuf" => Some(Self::Protobuf),
                "Avro" => Some(Self::Avro),
                "Bool" => Some(Self::Bool),
                "Int8" => Some(Self::Int8),
                "Int16" => Some(Self::Int16),
                "Int32" => Some(Self::Int32),
                "Int64" => Some(Self::Int64),
                "Float" => Some(Self::Float),
                "Double" => Some(Self::Double),
                "Date" => Some(Self::Date),
                "Time" => Some(Self::Time),
                "Timestamp" => Some(Self::Timestamp),
                "KeyValue" => Some(Self::KeyValue),
                "Instant" => Some(Self::Instant),
                "LocalDate" => Some(Self::LocalDate),
                "LocalTime" => Some(Self::LocalTime),
                "LocalDateTime" => Some(Self::LocalDateTime),
                "ProtobufNative" => Some(Self::ProtobufNative),
                _ => None,
            }
        }
    }
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct MessageIdData {
    #[prost(uint64, required, tag = "1")]
    pub ledger_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub entry_id: u64,
    #[prost(int32, optional, tag = "3", default = "-1")]
    pub partition: Option<i32>,
    #[prost(int32, optional, tag = "4", default = "-1")]
    pub batch_index: Option<i32>,
    #[prost(int64, repeated, packed = "false", tag = "5")]
    pub ack_set: Vec<i64>,
    #[prost(int32, optional, tag = "6")]
    pub batch_size: Option<i32>,
    /// For the chunk message id, we need to specify the first chunk message id.
    #[prost(message, optional, boxed, tag = "7")]
    pub first_chunk_message_id: Option<Box<MessageIdData>>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct KeyValue {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub value: String,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct KeyLongValue {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(uint64, required, tag = "2")]
    pub value: u64,
}
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct IntRange {
    #[prost(int32, required, tag = "1")]
    pub start: i32,
    #[prost(int32, required, tag = "2")]
    pub end: i32,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct EncryptionKeys {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(bytes = "vec", required, tag = "2")]
    pub value: Vec<u8>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<KeyValue>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct MessageMetadata {
    #[prost(string, required, tag = "1")]
    pub producer_name: String,
    #[prost(uint64, required, tag = "2")]
    pub sequence_id: u64,
    #[prost(uint64, required, tag = "3")]
    pub publish_time: u64,
    #[prost(message, repeated, tag = "4")]
    pub properties: Vec<KeyValue>,
    /// Property set on replicated message,
    /// includes the source cluster name
    #[prost(string, optional, tag = "5")]
    pub replicated_from: Option<String>,
    /// key to decide partition for the msg
    #[prost(string, optional, tag = "6")]
    pub partition_key: Option<String>,
    /// Override namespace's replication
    #[prost(string, repeated, tag = "7")]
    pub replicate_to: Vec<String>,
    #[prost(enumeration = "CompressionType", optional, tag = "8", default = "None")]
    pub compression: Option<i32>,
    #[prost(uint32, optional, tag = "9", default = "0")]
    pub uncompressed_size: Option<u32>,
    /// Differentiate single and batch message metadata. (Tag 10, a checksum,
    /// was removed: the SEND command's checksum covers header and payload.)
    #[prost(int32, optional, tag = "11", default = "1")]
    pub num_messages_in_batch: Option<i32>,
    /// the timestamp that this event occurs. it is typically set by applications.
    /// if this field is omitted, `publish_time` can be used for the purpose of `event_time`.
    #[prost(uint64, optional, tag = "12", default = "0")]
    pub event_time: Option<u64>,
    /// Contains encryption key name, encrypted key and metadata to describe the key
    #[prost(message, repeated, tag = "13")]
    pub encryption_keys: Vec<EncryptionKeys>,
    /// Algorithm used to encrypt data key
    #[prost(string, optional, tag = "14")]
    pub encryption_algo: Option<String>,
    /// Additional parameters required by encryption
    #[prost(bytes = "vec", optional, tag = "15")]
    pub encryption_param: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "16")]
    pub schema_version: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "17", default = "false")]
    pub partition_key_b64_encoded: Option<bool>,
    /// Specific a key to overwrite the message key which used for ordering dispatch in Key_Shared mode.
    #[prost(bytes = "vec", optional, tag = "18")]
    pub ordering_key: Option<Vec<u8>>,
    /// Mark the message to be delivered at or after the specified timestamp
    #[prost(int64, optional, tag = "19")]
    pub deliver_at_time: Option<i64>,
    /// Identify whether a message is a "marker" message used for
    /// internal metadata instead of application published data.
    /// Markers will generally not be propagated back to clients
    #[prost(int32, optional, tag = "20")]
    pub marker_type: Option<i32>,
    /// transaction related message info
    #[prost(uint64, optional, tag = "22")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "23")]
    pub txnid_most_bits: Option<u64>,
    /// Add highest sequence id to support batch message with external sequence id
    #[prost(uint64, optional, tag = "24", default = "0")]
    pub highest_sequence_id: Option<u64>,
    /// Indicate if the message payload value is set
    #[prost(bool, optional, tag = "25", default = "false")]
    pub null_value: Option<bool>,
    #[prost(string, optional, tag = "26")]
    pub uuid: Option<String>,
    #[prost(int32, optional, tag = "27")]
    pub num_chunks_from_msg: Option<i32>,
    #[prost(int32, optional, tag = "28")]
    pub total_chunk_msg_size: Option<i32>,
    #[prost(int32, optional, tag = "29")]
    pub chunk_id: Option<i32>,
    /// Indicate if the message partition key is set
    #[prost(bool, optional, tag = "30", default = "false")]
    pub null_partition_key: Option<bool>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SingleMessageMetadata {
    #[prost(message, repeated, tag = "1")]
    pub properties: Vec<KeyValue>,
    #[prost(string, optional, tag = "2")]
    pub partition_key: Option<String>,
    #[prost(int32, required, tag = "3")]
    pub payload_size: i32,
    #[prost(bool, optional, tag = "4", default = "false")]
    pub compacted_out: Option<bool>,
    /// the timestamp that this event occurs. it is typically set by applications.
    /// if this field is omitted, `publish_time` can be used for the purpose of `event_time`.
    #[prost(uint64, optional, tag = "5", default = "0")]
    pub event_time: Option<u64>,
    #[prost(bool, optional, tag = "6", default = "false")]
    pub partition_key_b64_encoded: Option<bool>,
    /// Specific a key to overwrite the message key which used for ordering dispatch in Key_Shared mode.
    #[prost(bytes = "vec", optional, tag = "7")]
    pub ordering_key: Option<Vec<u8>>,
    /// Allows consumer retrieve the sequence id that the producer set.
    #[prost(uint64, optional, tag = "8")]
    pub sequence_id: Option<u64>,
    /// Indicate if the message payload value is set
    #[prost(bool, optional, tag = "9", default = "false")]
    pub null_value: Option<bool>,
    /// Indicate if the message partition key is set
    #[prost(bool, optional, tag = "10", default = "false")]
    pub null_partition_key: Option<bool>,
}
/// Metadata added to an entry by the broker
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct BrokerEntryMetadata {
    #[prost(uint64, optional, tag = "1")]
    pub broker_timestamp: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub index: Option<u64>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandConnect {
    #[prost(string, required, tag = "1")]
    pub client_version: String,
    /// Deprecated. Use "auth_method_name" instead.
    #[prost(enumeration = "AuthMethod", optional, tag = "2")]
    pub auth_method: Option<i32>,
    #[prost(string, optional, tag = "5")]
    pub auth_method_name: Option<String>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub auth_data: Option<Vec<u8>>,
    #[prost(int32, optional, tag = "4", default = "0")]
    pub protocol_version: Option<i32>,
    /// Client can ask to be proxyied to a specific broker
    /// This is only honored by a Pulsar proxy
    #[prost(string, optional, tag = "6")]
    pub proxy_to_broker_url: Option<String>,
    /// Original principal that was verified by
    /// a Pulsar proxy. In this case the auth info above
    /// will be the auth of the proxy itself
    #[prost(string, optional, tag = "7")]
    pub original_principal: Option<String>,
    /// Original auth role and auth Method that was passed
    /// to the proxy. In this case the auth info above
    /// will be the auth of the proxy itself
    #[prost(string, optional, tag = "8")]
    pub original_auth_data: Option<String>,
    #[prost(string, optional, tag = "9")]
    pub original_auth_method: Option<String>,
    /// Feature flags
    #[prost(message, optional, tag = "10")]
    pub feature_flags: Option<FeatureFlags>,
}
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct FeatureFlags {
    #[prost(bool, optional, tag = "1", default = "false")]
    pub supports_auth_refresh: Option<bool>,
    #[prost(bool, optional, tag = "2", default = "false")]
    pub supports_broker_entry_metadata: Option<bool>,
    #[prost(bool, optional, tag = "3", default = "false")]
    pub supports_partial_producer: Option<bool>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandConnected {
    #[prost(string, required, tag = "1")]
    pub server_version: String,
    #[prost(int32, optional, tag = "2", default = "0")]
    pub protocol_version: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub max_message_size: Option<i32>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandAuthResponse {
    #[prost(string, optional, tag = "1")]
    pub client_version: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub response: Option<AuthData>,
    #[prost(int32, optional, tag = "3", default = "0")]
    pub protocol_version: Option<i32>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandAuthChallenge {
    #[prost(string, optional, tag = "1")]
    pub server_version: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub challenge: Option<AuthData>,
    #[prost(int32, optional, tag = "3", default = "0")]
    pub protocol_version: Option<i32>,
}
/// To support mutual authentication type, such as Sasl, reuse this command to mutual auth.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct AuthData {
    #[prost(string, optional, tag = "1")]
    pub auth_method_name: Option<String>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub auth_data: Option<Vec<u8>>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct KeySharedMeta {
    #[prost(enumeration = "KeySharedMode", required, tag = "1")]
    pub key_shared_mode: i32,
    #[prost(message, repeated, tag = "3")]
    pub hash_ranges: Vec<IntRange>,
    #[prost(bool, optional, tag = "4", default = "false")]
    pub allow_out_of_order_delivery: Option<bool>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandSubscribe {
    #[prost(string, required, tag = "1")]
    pub topic: String,
    #[prost(string, required, tag = "2")]
    pub subscription: String,
    #[prost(enumeration = "command_subscribe::SubType", required, tag = "3")]
    pub sub_type: i32,
    #[prost(uint64, required, tag = "4")]
    pub consumer_id: u64,
    #[prost(uint64, required, tag = "5")]
    pub request_id: u64,
    #[prost(string, optional, tag = "6")]
    pub consumer_name: Option<String>,
    #[prost(int32, optional, tag = "7")]
    pub priority_level: Option<i32>,
    /// Signal wether the subscription should be backed by a
    /// durable cursor or not
    #[prost(bool, optional, tag = "8", default = "true")]
    pub durable: Option<bool>,
    /// If specified, the subscription will position the cursor
    /// markd-delete position  on the particular message id and
    /// will send messages from that point
    #[prost(message, optional, tag = "9")]
    pub start_message_id: Option<MessageIdData>,
    /// Add optional metadata key=value to this consumer
    #[prost(message, repeated, tag = "10")]
    pub metadata: Vec<KeyValue>,
    #[prost(bool, optional, tag = "11")]
    pub read_compacted: Option<bool>,
    #[prost(message, optional, tag = "12")]
    pub schema: Option<Schema>,
    /// Signal whether the subscription will initialize on latest
    /// or not -- earliest
    #[prost(enumeration = "command_subscribe::InitialPosition", optional, tag = "13", default = "Latest")]
    pub initial_position: Option<i32>,
    /// Mark the subscription as "replicated". Pulsar will make sure
    /// to periodically sync the state of replicated subscriptions
    /// across different clusters (when using geo-replication).
    #[prost(bool, optional, tag = "14")]
    pub replicate_subscription_state: Option<bool>,
    /// If true, the subscribe operation will cause a topic to be
    /// created if it does not exist already (and if topic auto-creation
    /// is allowed by broker.
    /// If false, the subscribe operation will fail if the topic
    /// does not exist.
    #[prost(bool, optional, tag = "15", default = "true")]
    pub force_topic_creation: Option<bool>,
    /// If specified, the subscription will reset cursor's position back
    /// to specified seconds and  will send messages from that point
    #[prost(uint64, optional, tag = "16", default = "0")]
    pub start_message_rollback_duration_sec: Option<u64>,
    #[prost(message, optional, tag = "17")]
    pub key_shared_meta: Option<KeySharedMeta>,
    #[prost(message, repeated, tag = "18")]
    pub subscription_properties: Vec<KeyValue>,
    /// The consumer epoch, when exclusive and failover consumer redeliver unack message will increase the epoch
    #[prost(uint64, optional, tag = "19")]
    pub consumer_epoch: Option<u64>,
}
/// Nested message and enum types in `CommandSubscribe`.
pub mod command_subscribe {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum SubType {
        Exclusive = 0,
        Shared = 1,
        Failover = 2,
        KeyShared = 3,
    }
    impl SubType {
        /// The name of this value in PulsarApi.proto.
        pub fn as_str_name(&self) -> &'static str {
            match self {
                Self::Exclusive => "Exclusive",
                Self::Shared => "Shared",
                Self::Failover => "Failover",
                Self::KeyShared => "Key_Shared",
            }
        }
        /// The value with this name in PulsarApi.proto, if any.
        pub fn from_str_name(value: &str) -> Option<Self> {
            match value {
                "Exclusive" => Some(Self::Exclusive),
                "Shared" => Some(Self::Shared),
                "Failover" => Some(Self::Failover),
                "Key_Shared" => Some(Self::KeyShared),
                _ => None,
            }
        }
    }
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum InitialPosition {
        Latest = 0,
        Earliest = 1,
    }
    impl InitialPosition {
        /// The name of this value in PulsarApi.proto.
        pub fn as_str_name(&self) -> &'static str {
            match self {
                Self::Latest => "Latest",
                Self::Earliest => "Earliest",
            }
        }
        /// The value with this name in PulsarApi.proto, if any.
        pub fn from_str_name(value: &str) -> Option<Self> {
            match value {
                "Latest" => Some(Self::Latest),
                "Earliest" => Some(Self::Earliest),
                _ => None,
            }
        }
    }
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandPartitionedTopicMetadata {
    #[prost(string, required, tag = "1")]
    pub topic: String,
    #[prost(uint64, required, tag = "2")]
    pub request_id: u64,
    /// TODO - Remove original_principal, original_auth_data, original_auth_method
    /// Original principal that was verified by
    /// a Pulsar proxy.
    #[prost(string, optional, tag = "3")]
    pub original_principal: Option<String>,
    /// Original auth role and auth Method that was passed
    /// to the proxy.
    #[prost(string, optional, tag = "4")]
    pub original_auth_data: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub original_auth_method: Option<String>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandPartitionedTopicMetadataResponse {
    /// Optional in case of error
    #[prost(uint32, optional, tag = "1")]
    pub partitions: Option<u32>,
    #[prost(uint64, required, tag = "2")]
    pub request_id: u64,
    #[prost(enumeration = "command_partitioned_topic_metadata_response::LookupType", optional, tag = "3")]
    pub response: Option<i32>,
    #[prost(enumeration = "ServerError", optional, tag = "4")]
    pub error: Option<i32>,
    #[prost(string, optional, tag = "5")]
    pub message: Option<String>,
}
/// Nested message and enum types in `CommandPartitionedTopicMetadataResponse`.
pub mod command_partitioned_topic_metadata_response {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum LookupType {
        Success = 0,
        Failed = 1,
    }
    impl LookupType {
        /// The name of this value in PulsarApi.proto.
        pub fn as_str_name(&self) -> &'static str {
            match self {
                Self::Success => "Success",
                Self::Failed => "Failed",
            }
        }
        /// The value with this name in PulsarApi.proto, if any.
        pub fn from_str_name(value: &str) -> Option<Self> {
            match value {
                "Success" => Some(Self::Success),
                "Failed" => Some(Self::Failed),
                _ => None,
            }
        }
    }
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandLookupTopic {
    #[prost(string, required, tag = "1")]
    pub topic: String,
    #[prost(uint64, required, tag = "2")]
    pub request_id: u64,
    #[prost(bool, optional, tag = "3", default = "false")]
    pub authoritative: Option<bool>,
    /// TODO - Remove original_principal, original_auth_data, original_auth_method
    /// Original principal that was verified by
    /// a Pulsar proxy.
    #[prost(string, optional, tag = "4")]
    pub original_principal: Option<String>,
    /// Original auth role and auth Method that was passed
    /// to the proxy.
    #[prost(string, optional, tag = "5")]
    pub original_auth_data: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub original_auth_method: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub advertised_listener_name: Option<String>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandLookupTopicResponse {
    /// Optional in case of error
    #[prost(string, optional, tag = "1")]
    pub broker_service_url: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub broker_service_url_tls: Option<String>,
    #[prost(enumeration = "command_lookup_topic_response::LookupType", optional, tag = "3")]
    pub response: Option<i32>,
    #[prost(uint64, required, tag = "4")]
    pub request_id: u64,
    #[prost(bool, optional, tag = "5", default = "false")]
    pub authoritative: Option<bool>,
    #[prost(enumeration = "ServerError", optional, tag = "6")]
    pub error: Option<i32>,
    #[prost(string, optional, tag = "7")]
    pub message: Option<String>,
    /// If it's true, indicates to the client that it must
    /// always connect through the service url after the
    /// lookup has been completed.
    #[prost(bool, optional, tag = "8", default = "false")]
    pub proxy_through_service_url: Option<bool>,
}
/// Nested message and enum types in `CommandLookupTopicResponse`.
pub mod command_lookup_topic_response {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum LookupType {
        Redirect = 0,
        Connect = 1,
        Failed = 2,
    }
    impl LookupType {
        /// The name of this value in PulsarApi.proto.
        pub fn as_str_name(&self) -> &'static str {
            match self {
                Self::Redirect => "Redirect",
                Self::Connect => "Connect",
                Self::Failed => "Failed",
            }
        }
        /// The value with this name in PulsarApi.proto, if any.
        pub fn from_str_name(value: &str) -> Option<Self> {
            match value {
                "Redirect" => Some(Self::Redirect),
                "Connect" => Some(Self::Connect),
                "Failed" => Some(Self::Failed),
                _ => None,
            }
        }
    }
}
/// Create a new Producer on a topic, assigning the given producer_id,
/// all messages sent with this producer_id will be persisted on the topic
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandProducer {
    #[prost(string, required, tag = "1")]
    pub topic: String,
    #[prost(uint64, required, tag = "2")]
    pub producer_id: u64,
    #[prost(uint64, required, tag = "3")]
    pub request_id: u64,
    /// If a producer name is specified, the name will be used,
    /// otherwise the broker will generate a unique name
    #[prost(string, optional, tag = "4")]
    pub producer_name: Option<String>,
    #[prost(bool, optional, tag = "5", default = "false")]
    pub encrypted: Option<bool>,
    /// Add optional metadata key=value to this producer
    #[prost(message, repeated, tag = "6")]
    pub metadata: Vec<KeyValue>,
    #[prost(message, optional, tag = "7")]
    pub schema: Option<Schema>,
    /// If producer reconnect to broker, the epoch of this producer will +1
    #[prost(uint64, optional, tag = "8", default = "0")]
    pub epoch: Option<u64>,
    /// Indicate the name of the producer is generated or user provided
    /// Use default true here is in order to be forward compatible with the client
    #[prost(bool, optional, tag = "9", default = "true")]
    pub user_provided_producer_name: Option<bool>,
    /// Require that this producers will be the only producer allowed on the topic
    #[prost(enumeration = "ProducerAccessMode", optional, tag = "10", default = "Shared")]
    pub producer_access_mode: Option<i32>,
    /// Topic epoch is used to fence off producers that reconnects after a new
    /// exclusive producer has already taken over. This id is assigned by the
    /// broker on the CommandProducerSuccess. The first time, the client will
    /// leave it empty and then it will always carry the same epoch number on
    /// the subsequent reconnections.
    #[prost(uint64, optional, tag = "11")]
    pub topic_epoch: Option<u64>,
    #[prost(bool, optional, tag = "12", default = "false")]
    pub txn_enabled: Option<bool>,
    /// Name of the initial subscription of the topic.
    /// If this field is not set, the initial subscription will not be created.
    /// If this field is set but the broker's `allowAutoSubscriptionCreation`
    /// is disabled, the producer will fail to be created.
    #[prost(string, optional, tag = "13")]
    pub initial_subscription_name: Option<String>,
}
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandSend {
    #[prost(uint64, required, tag = "1")]
    pub producer_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub sequence_id: u64,
    #[prost(int32, optional, tag = "3", default = "1")]
    pub num_messages: Option<i32>,
    #[prost(uint64, optional, tag = "4", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "5", default = "0")]
    pub txnid_most_bits: Option<u64>,
    /// Add highest sequence id to support batch message with external sequence id
    #[prost(uint64, optional, tag = "6", default = "0")]
    pub highest_sequence_id: Option<u64>,
    #[prost(bool, optional, tag = "7", default = "false")]
    pub is_chunk: Option<bool>,
    /// Specify if the message being published is a Pulsar marker or not
    #[prost(bool, optional, tag = "8", default = "false")]
    pub marker: Option<bool>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandSendReceipt {
    #[prost(uint64, required, tag = "1")]
    pub producer_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub sequence_id: u64,
    #[prost(message, optional, tag = "3")]
    pub message_id: Option<MessageIdData>,
    #[prost(uint64, optional, tag = "4", default = "0")]
    pub highest_sequence_id: Option<u64>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandSendError {
    #[prost(uint64, required, tag = "1")]
    pub producer_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub sequence_id: u64,
    #[prost(enumeration = "ServerError", required, tag = "3")]
    pub error: i32,
    #[prost(string, required, tag = "4")]
    pub message: String,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandMessage {
    #[prost(uint64, required, tag = "1")]
    pub consumer_id: u64,
    #[prost(message, required, tag = "2")]
    pub message_id: MessageIdData,
    #[prost(uint32, optional, tag = "3", default = "0")]
    pub redelivery_count: Option<u32>,
    #[prost(int64, repeated, packed = "false", tag = "4")]
    pub ack_set: Vec<i64>,
    #[prost(uint64, optional, tag = "5")]
    pub consumer_epoch: Option<u64>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandAck {
    #[prost(uint64, required, tag = "1")]
    pub consumer_id: u64,
    #[prost(enumeration = "command_ack::AckType", required, tag = "2")]
    pub ack_type: i32,
    /// In case of individual acks, the client can pass a list of message ids
    #[prost(message, repeated, tag = "3")]
    pub message_id: Vec<MessageIdData>,
    #[prost(enumeration = "command_ack::ValidationError", optional, tag = "4")]
    pub validation_error: Option<i32>,
    #[prost(message, repeated, tag = "5")]
    pub properties: Vec<KeyLongValue>,
    #[prost(uint64, optional, tag = "6", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "7", default = "0")]
    pub txnid_most_bits: Option<u64>,
    #[prost(uint64, optional, tag = "8")]
    pub request_id: Option<u64>,
}
/// Nested message and enum types in `CommandAck`.
pub mod command_ack {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum AckType {
        Individual = 0,
        Cumulative = 1,
    }
    impl AckType {
        /// The name of this value in PulsarApi.proto.
        pub fn as_str_name(&self) -> &'static str {
            match self {
                Self::Individual => "Individual",
                Self::Cumulative => "Cumulative",
            }
        }
        /// The value with this name in PulsarApi.proto, if any.
        pub fn from_str_name(value: &str) -> Option<Self> {
            match value {
                "Individual" => Some(Self::Individual),
                "Cumulative" => Some(Self::Cumulative),
                _ => None,
            }
        }
    }
    /// Acks can contain a flag to indicate the consumer
    /// received an invalid message that got discarded
    /// before being passed on to the application.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum ValidationError {
        UncompressedSizeCorruption = 0,
        DecompressionError = 1,
        ChecksumMismatch = 2,
        BatchDeSerializeError = 3,
        DecryptionError = 4,
    }
    impl ValidationError {
        /// The name of this value in PulsarApi.proto.
        pub fn as_str_name(&self) -> &'static str {
            match self {
                Self::UncompressedSizeCorruption => "UncompressedSizeCorruption",
                Self::DecompressionError => "DecompressionError",
                Self::ChecksumMismatch => "ChecksumMismatch",
                Self::BatchDeSerializeError => "BatchDeSerializeError",
                Self::DecryptionError => "DecryptionError",
            }
        }
        /// The value with this name in PulsarApi.proto, if any.
        pub fn from_str_name(value: &str) -> Option<Self> {
            match value {
                "UncompressedSizeCorruption" => Some(Self::UncompressedSizeCorruption),
                "DecompressionError" => Some(Self::DecompressionError),
                "ChecksumMismatch" => Some(Self::ChecksumMismatch),
                "BatchDeSerializeError" => Some(Self::BatchDeSerializeError),
                "DecryptionError" => Some(Self::DecryptionError),
                _ => None,
            }
        }
    }
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandAckResponse {
    #[prost(uint64, required, tag = "1")]
    pub consumer_id: u64,
    #[prost(uint64, optional, tag = "2", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "3", default = "0")]
    pub txnid_most_bits: Option<u64>,
    #[prost(enumeration = "ServerError", optional, tag = "4")]
    pub error: Option<i32>,
    #[prost(string, optional, tag = "5")]
    pub message: Option<String>,
    #[prost(uint64, optional, tag = "6")]
    pub request_id: Option<u64>,
}
/// changes on active consumer
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandActiveConsumerChange {
    #[prost(uint64, required, tag = "1")]
    pub consumer_id: u64,
    #[prost(bool, optional, tag = "2", default = "false")]
    pub is_active: Option<bool>,
}
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandFlow {
    #[prost(uint64, required, tag = "1")]
    pub consumer_id: u64,
    /// Max number of messages to prefetch, in addition
    /// of any number previously specified
    #[prost(uint32, required, tag = "2")]
    pub message_permits: u32,
}
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandUnsubscribe {
    #[prost(uint64, required, tag = "1")]
    pub consumer_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub request_id: u64,
}
/// Reset an existing consumer to a particular message id
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandSeek {
    #[prost(uint64, required, tag = "1")]
    pub consumer_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub request_id: u64,
    #[prost(message, optional, tag = "3")]
    pub message_id: Option<MessageIdData>,
    #[prost(uint64, optional, tag = "4")]
    pub message_publish_time: Option<u64>,
}
/// Message sent by broker to client when a topic
/// has been forcefully terminated and there are no more
/// messages left to consume
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandReachedEndOfTopic {
    #[prost(uint64, required, tag = "1")]
    pub consumer_id: u64,
}
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandCloseProducer {
    #[prost(uint64, required, tag = "1")]
    pub producer_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub request_id: u64,
}
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandCloseConsumer {
    #[prost(uint64, required, tag = "1")]
    pub consumer_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub request_id: u64,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandRedeliverUnacknowledgedMessages {
    #[prost(uint64, required, tag = "1")]
    pub consumer_id: u64,
    #[prost(message, repeated, tag = "2")]
    pub message_ids: Vec<MessageIdData>,
    #[prost(uint64, optional, tag = "3")]
    pub consumer_epoch: Option<u64>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandSuccess {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(message, optional, tag = "2")]
    pub schema: Option<Schema>,
}
/// Response from CommandProducer
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandProducerSuccess {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(string, required, tag = "2")]
    pub producer_name: String,
    /// The last sequence id that was stored by this producer in the previous session
    /// This will only be meaningful if deduplication has been enabled.
    #[prost(int64, optional, tag = "3", default = "-1")]
    pub last_sequence_id: Option<i64>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub schema_version: Option<Vec<u8>>,
    /// The topic epoch assigned by the broker. This field will only be set if we
    /// were requiring exclusive access when creating the producer.
    #[prost(uint64, optional, tag = "5")]
    pub topic_epoch: Option<u64>,
    /// If producer is not "ready", the client will avoid to timeout the request
    /// for creating the producer. Instead it will wait indefinitely until it gets
    /// a subsequent  `CommandProducerSuccess` with `producer_ready==true`.
    #[prost(bool, optional, tag = "6", default = "true")]
    pub producer_ready: Option<bool>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandError {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(enumeration = "ServerError", required, tag = "2")]
    pub error: i32,
    #[prost(string, required, tag = "3")]
    pub message: String,
}
/// Commands to probe the state of connection.
/// When either client or broker doesn't receive commands for certain
/// amount of time, they will send a Ping probe.
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandPing {}
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandPong {}
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandConsumerStats {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    /// (Tags 2 and 3, the topic and subscription names, are no longer used.)
    #[prost(uint64, required, tag = "4")]
    pub consumer_id: u64,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandConsumerStatsResponse {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(enumeration = "ServerError", optional, tag = "2")]
    pub error_code: Option<i32>,
    #[prost(string, optional, tag = "3")]
    pub error_message: Option<String>,
    /// Total rate of messages delivered to the consumer. msg/s
    #[prost(double, optional, tag = "4")]
    pub msg_rate_out: Option<f64>,
    /// Total throughput delivered to the consumer. bytes/s
    #[prost(double, optional, tag = "5")]
    pub msg_throughput_out: Option<f64>,
    /// Total rate of messages redelivered by this consumer. msg/s
    #[prost(double, optional, tag = "6")]
    pub msg_rate_redeliver: Option<f64>,
    /// Name of the consumer
    #[prost(string, optional, tag = "7")]
    pub consumer_name: Option<String>,
    /// Number of available message permits for the consumer
    #[prost(uint64, optional, tag = "8")]
    pub available_permits: Option<u64>,
    /// Number of unacknowledged messages for the consumer
    #[prost(uint64, optional, tag = "9")]
    pub unacked_messages: Option<u64>,
    /// Flag to verify if consumer is blocked due to reaching threshold of unacked messages
    #[prost(bool, optional, tag = "10")]
    pub blocked_consumer_on_unacked_msgs: Option<bool>,
    /// Address of this consumer
    #[prost(string, optional, tag = "11")]
    pub address: Option<String>,
    /// Timestamp of connection
    #[prost(string, optional, tag = "12")]
    pub connected_since: Option<String>,
    /// Whether this subscription is Exclusive or Shared or Failover
    #[prost(string, optional, tag = "13")]
    pub r#type: Option<String>,
    /// Total rate of messages expired on this subscription. msg/s
    #[prost(double, optional, tag = "14")]
    pub msg_rate_expired: Option<f64>,
    /// Number of messages in the subscription backlog
    #[prost(uint64, optional, tag = "15")]
    pub msg_backlog: Option<u64>,
    /// Total rate of messages ack. msg/s
    #[prost(double, optional, tag = "16")]
    pub message_ack_rate: Option<f64>,
}
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandGetLastMessageId {
    #[prost(uint64, required, tag = "1")]
    pub consumer_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub request_id: u64,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandGetLastMessageIdResponse {
    #[prost(message, required, tag = "1")]
    pub last_message_id: MessageIdData,
    #[prost(uint64, required, tag = "2")]
    pub request_id: u64,
    #[prost(message, optional, tag = "3")]
    pub consumer_mark_delete_position: Option<MessageIdData>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandGetTopicsOfNamespace {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(string, required, tag = "2")]
    pub namespace: String,
    #[prost(enumeration = "command_get_topics_of_namespace::Mode", optional, tag = "3", default = "Persistent")]
    pub mode: Option<i32>,
    #[prost(string, optional, tag = "4")]
    pub topics_pattern: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub topics_hash: Option<String>,
}
/// Nested message and enum types in `CommandGetTopicsOfNamespace`.
pub mod command_get_topics_of_namespace {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum Mode {
        Persistent = 0,
        NonPersistent = 1,
        All = 2,
    }
    impl Mode {
        /// The name of this value in PulsarApi.proto.
        pub fn as_str_name(&self) -> &'static str {
            match self {
                Self::Persistent => "PERSISTENT",
                Self::NonPersistent => "NON_PERSISTENT",
                Self::All => "ALL",
            }
        }
        /// The value with this name in PulsarApi.proto, if any.
        pub fn from_str_name(value: &str) -> Option<Self> {
            match value {
                "PERSISTENT" => Some(Self::Persistent),
                "NON_PERSISTENT" => Some(Self::NonPersistent),
                "ALL" => Some(Self::All),
                _ => None,
            }
        }
    }
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandGetTopicsOfNamespaceResponse {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(string, repeated, tag = "2")]
    pub topics: Vec<String>,
    /// true iff the topic list was filtered by the pattern supplied by the client
    #[prost(bool, optional, tag = "3", default = "false")]
    pub filtered: Option<bool>,
    /// hash computed from the names of matching topics
    #[prost(string, optional, tag = "4")]
    pub topics_hash: Option<String>,
    /// if false, topics is empty and the list of matching topics has not changed
    #[prost(bool, optional, tag = "5", default = "true")]
    pub changed: Option<bool>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandGetSchema {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(string, required, tag = "2")]
    pub topic: String,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub schema_version: Option<Vec<u8>>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandGetSchemaResponse {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(enumeration = "ServerError", optional, tag = "2")]
    pub error_code: Option<i32>,
    #[prost(string, optional, tag = "3")]
    pub error_message: Option<String>,
    #[prost(message, optional, tag = "4")]
    pub schema: Option<Schema>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub schema_version: Option<Vec<u8>>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandGetOrCreateSchema {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(string, required, tag = "2")]
    pub topic: String,
    #[prost(message, required, tag = "3")]
    pub schema: Schema,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandGetOrCreateSchemaResponse {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(enumeration = "ServerError", optional, tag = "2")]
    pub error_code: Option<i32>,
    #[prost(string, optional, tag = "3")]
    pub error_message: Option<String>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub schema_version: Option<Vec<u8>>,
}
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandTcClientConnectRequest {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, required, tag = "2", default = "0")]
    pub tc_id: u64,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandTcClientConnectResponse {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(enumeration = "ServerError", optional, tag = "2")]
    pub error: Option<i32>,
    #[prost(string, optional, tag = "3")]
    pub message: Option<String>,
}
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandNewTxn {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, optional, tag = "2", default = "0")]
    pub txn_ttl_seconds: Option<u64>,
    #[prost(uint64, optional, tag = "3", default = "0")]
    pub tc_id: Option<u64>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandNewTxnResponse {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, optional, tag = "2", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "3", default = "0")]
    pub txnid_most_bits: Option<u64>,
    #[prost(enumeration = "ServerError", optional, tag = "4")]
    pub error: Option<i32>,
    #[prost(string, optional, tag = "5")]
    pub message: Option<String>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandAddPartitionToTxn {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, optional, tag = "2", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "3", default = "0")]
    pub txnid_most_bits: Option<u64>,
    #[prost(string, repeated, tag = "4")]
    pub partitions: Vec<String>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandAddPartitionToTxnResponse {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, optional, tag = "2", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "3", default = "0")]
    pub txnid_most_bits: Option<u64>,
    #[prost(enumeration = "ServerError", optional, tag = "4")]
    pub error: Option<i32>,
    #[prost(string, optional, tag = "5")]
    pub message: Option<String>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Subscription {
    #[prost(string, required, tag = "1")]
    pub topic: String,
    #[prost(string, required, tag = "2")]
    pub subscription: String,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandAddSubscriptionToTxn {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, optional, tag = "2", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "3", default = "0")]
    pub txnid_most_bits: Option<u64>,
    #[prost(message, repeated, tag = "4")]
    pub subscription: Vec<Subscription>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandAddSubscriptionToTxnResponse {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, optional, tag = "2", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "3", default = "0")]
    pub txnid_most_bits: Option<u64>,
    #[prost(enumeration = "ServerError", optional, tag = "4")]
    pub error: Option<i32>,
    #[prost(string, optional, tag = "5")]
    pub message: Option<String>,
}
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct CommandEndTxn {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, optional, tag = "2", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "3", default = "0")]
    pub txnid_most_bits: Option<u64>,
    #[prost(enumeration = "TxnAction", optional, tag = "4")]
    pub txn_action: Option<i32>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandEndTxnResponse {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, optional, tag = "2", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "3", default = "0")]
    pub txnid_most_bits: Option<u64>,
    #[prost(enumeration = "ServerError", optional, tag = "4")]
    pub error: Option<i32>,
    #[prost(string, optional, tag = "5")]
    pub message: Option<String>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandEndTxnOnPartition {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, optional, tag = "2", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "3", default = "0")]
    pub txnid_most_bits: Option<u64>,
    #[prost(string, optional, tag = "4")]
    pub topic: Option<String>,
    #[prost(enumeration = "TxnAction", optional, tag = "5")]
    pub txn_action: Option<i32>,
    #[prost(uint64, optional, tag = "6")]
    pub txnid_least_bits_of_low_watermark: Option<u64>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandEndTxnOnPartitionResponse {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, optional, tag = "2", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "3", default = "0")]
    pub txnid_most_bits: Option<u64>,
    #[prost(enumeration = "ServerError", optional, tag = "4")]
    pub error: Option<i32>,
    #[prost(string, optional, tag = "5")]
    pub message: Option<String>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandEndTxnOnSubscription {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, optional, tag = "2", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "3", default = "0")]
    pub txnid_most_bits: Option<u64>,
    #[prost(message, optional, tag = "4")]
    pub subscription: Option<Subscription>,
    #[prost(enumeration = "TxnAction", optional, tag = "5")]
    pub txn_action: Option<i32>,
    #[prost(uint64, optional, tag = "6")]
    pub txnid_least_bits_of_low_watermark: Option<u64>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CommandEndTxnOnSubscriptionResponse {
    #[prost(uint64, required, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, optional, tag = "2", default = "0")]
    pub txnid_least_bits: Option<u64>,
    #[prost(uint64, optional, tag = "3", default = "0")]
    pub txnid_most_bits: Option<u64>,
    #[prost(enumeration = "ServerError", optional, tag = "4")]
    pub error: Option<i32>,
    #[prost(string, optional, tag = "5")]
    pub message: Option<String>,
}
/// A frame's command: `type` names it, and the field for that command
/// carries it. A command this proto does not know keeps its `type` number.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct BaseCommand {
    #[prost(enumeration = "base_command::Type", required, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub connect: Option<CommandConnect>,
    #[prost(message, optional, tag = "3")]
    pub connected: Option<CommandConnected>,
    #[prost(message, optional, tag = "4")]
    pub subscribe: Option<CommandSubscribe>,
    #[prost(message, optional, tag = "5")]
    pub producer: Option<CommandProducer>,
    #[prost(message, optional, tag = "6")]
    pub send: Option<CommandSend>,
    #[prost(message, optional, tag = "7")]
    pub send_receipt: Option<CommandSendReceipt>,
    #[prost(message, optional, tag = "8")]
    pub send_error: Option<CommandSendError>,
    #[prost(message, optional, tag = "9")]
    pub message: Option<CommandMessage>,
    #[prost(message, optional, tag = "10")]
    pub ack: Option<CommandAck>,
    #[prost(message, optional, tag = "11")]
    pub flow: Option<CommandFlow>,
    #[prost(message, optional, tag = "12")]
    pub unsubscribe: Option<CommandUnsubscribe>,
    #[prost(message, optional, tag = "13")]
    pub success: Option<CommandSuccess>,
    #[prost(message, optional, tag = "14")]
    pub error: Option<CommandError>,
    #[prost(message, optional, tag = "15")]
    pub close_producer: Option<CommandCloseProducer>,
    #[prost(message, optional, tag = "16")]
    pub close_consumer: Option<CommandCloseConsumer>,
    #[prost(message, optional, tag = "17")]
    pub producer_success: Option<CommandProducerSuccess>,
    #[prost(message, optional, tag = "18")]
    pub ping: Option<CommandPing>,
    #[prost(message, optional, tag = "19")]
    pub pong: Option<CommandPong>,
    #[prost(message, optional, tag = "20")]
    pub redeliver_unacknowledged_messages: Option<CommandRedeliverUnacknowledgedMessages>,
    #[prost(message, optional, tag = "21")]
    pub partition_metadata: Option<CommandPartitionedTopicMetadata>,
    #[prost(message, optional, tag = "22")]
    pub partition_metadata_response: Option<CommandPartitionedTopicMetadataResponse>,
    #[prost(message, optional, tag = "23")]
    pub lookup_topic: Option<CommandLookupTopic>,
    #[prost(message, optional, tag = "24")]
    pub lookup_topic_response: Option<CommandLookupTopicResponse>,
    #[prost(message, optional, tag = "25")]
    pub consumer_stats: Option<CommandConsumerStats>,
    #[prost(message, optional, tag = "26")]
    pub consumer_stats_response: Option<CommandConsumerStatsResponse>,
    #[prost(message, optional, tag = "27")]
    pub reached_end_of_topic: Option<CommandReachedEndOfTopic>,
    #[prost(message, optional, tag = "28")]
    pub seek: Option<CommandSeek>,
    #[prost(message, optional, tag = "29")]
    pub get_last_message_id: Option<CommandGetLastMessageId>,
    #[prost(message, optional, tag = "30")]
    pub get_last_message_id_response: Option<CommandGetLastMessageIdResponse>,
    #[prost(message, optional, tag = "31")]
    pub active_consumer_change: Option<CommandActiveConsumerChange>,
    #[prost(message, optional, tag = "32")]
    pub get_topics_of_namespace: Option<CommandGetTopicsOfNamespace>,
    #[prost(message, optional, tag = "33")]
    pub get_topics_of_namespace_response: Option<CommandGetTopicsOfNamespaceResponse>,
    #[prost(message, optional, tag = "34")]
    pub get_schema: Option<CommandGetSchema>,
    #[prost(message, optional, tag = "35")]
    pub get_schema_response: Option<CommandGetSchemaResponse>,
    #[prost(message, optional, tag = "36")]
    pub auth_challenge: Option<CommandAuthChallenge>,
    #[prost(message, optional, tag = "37")]
    pub auth_response: Option<CommandAuthResponse>,
    #[prost(message, optional, tag = "38")]
    pub ack_response: Option<CommandAckResponse>,
    #[prost(message, optional, tag = "39")]
    pub get_or_create_schema: Option<CommandGetOrCreateSchema>,
    #[prost(message, optional, tag = "40")]
    pub get_or_create_schema_response: Option<CommandGetOrCreateSchemaResponse>,
    /// transaction related
    #[prost(message, optional, tag = "50")]
    pub new_txn: Option<CommandNewTxn>,
    #[prost(message, optional, tag = "51")]
    pub new_txn_response: Option<CommandNewTxnResponse>,
    #[prost(message, optional, tag = "52")]
    pub add_partition_to_txn: Option<CommandAddPartitionToTxn>,
    #[prost(message, optional, tag = "53")]
    pub add_partition_to_txn_response: Option<CommandAddPartitionToTxnResponse>,
    #[prost(message, optional, tag = "54")]
    pub add_subscription_to_txn: Option<CommandAddSubscriptionToTxn>,
    #[prost(message, optional, tag = "55")]
    pub add_subscription_to_txn_response: Option<CommandAddSubscriptionToTxnResponse>,
    #[prost(message, optional, tag = "56")]
    pub end_txn: Option<CommandEndTxn>,
    #[prost(message, optional, tag = "57")]
    pub end_txn_response: Option<CommandEndTxnResponse>,
    #[prost(message, optional, tag = "58")]
    pub end_txn_on_partition: Option<CommandEndTxnOnPartition>,
    #[prost(message, optional, tag = "59")]
    pub end_txn_on_partition_response: Option<CommandEndTxnOnPartitionResponse>,
    #[prost(message, optional, tag = "60")]
    pub end_txn_on_subscription: Option<CommandEndTxnOnSubscription>,
    #[prost(message, optional, tag = "61")]
    pub end_txn_on_subscription_response: Option<CommandEndTxnOnSubscriptionResponse>,
    #[prost(message, optional, tag = "62")]
    pub tc_client_connect_request: Option<CommandTcClientConnectRequest>,
    #[prost(message, optional, tag = "63")]
    pub tc_client_connect_response: Option<CommandTcClientConnectResponse>,
}
/// Nested message and enum types in `BaseCommand`.
pub mod base_command {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum Type {
        Connect = 2,
        Connected = 3,
        Subscribe = 4,
        Producer = 5,
        Send = 6,
        SendReceipt = 7,
        SendError = 8,
        Message = 9,
        Ack = 10,
        Flow = 11,
        Unsubscribe = 12,
        Success = 13,
        Error = 14,
        CloseProducer = 15,
        CloseConsumer = 16,
        ProducerSuccess = 17,
        Ping = 18,
        Pong = 19,
        RedeliverUnacknowledgedMessages = 20,
        PartitionedMetadata = 21,
        PartitionedMetadataResponse = 22,
        Lookup = 23,
        LookupResponse = 24,
        ConsumerStats = 25,
        ConsumerStatsResponse = 26,
        ReachedEndOfTopic = 27,
        Seek = 28,
        GetLastMessageId = 29,
        GetLastMessageIdResponse = 30,
        ActiveConsumerChange = 31,
        GetTopicsOfNamespace = 32,
        GetTopicsOfNamespaceResponse = 33,
        GetSchema = 34,
        GetSchemaResponse = 35,
        AuthChallenge = 36,
        AuthResponse = 37,
        AckResponse = 38,
        GetOrCreateSchema = 39,
        GetOrCreateSchemaResponse = 40,
        /// transaction related
        NewTxn = 50,
        NewTxnResponse = 51,
        AddPartitionToTxn = 52,
        AddPartitionToTxnResponse = 53,
        AddSubscriptionToTxn = 54,
        AddSubscriptionToTxnResponse = 55,
        EndTxn = 56,
        EndTxnResponse = 57,
        EndTxnOnPartition = 58,
        EndTxnOnPartitionResponse = 59,
        EndTxnOnSubscription = 60,
        EndTxnOnSubscriptionResponse = 61,
        TcClientConnectRequest = 62,
        TcClientConnectResponse = 63,
    }
    impl Type {
        /// The name of this value in PulsarApi.proto.
        pub fn as_str_name(&self) -> &'static str {
            match self {
                Self::Connect => "CONNECT",
                Self::Connected => "CONNECTED",
                Self::Subscribe => "SUBSCRIBE",
                Self::Producer => "PRODUCER",
                Self::Send => "SEND",
                Self::SendReceipt => "SEND_RECEIPT",
                Self::SendError => "SEND_ERROR",
                Self::Message => "MESSAGE",
                Self::Ack => "ACK",
                Self::Flow => "FLOW",
                Self::Unsubscribe => "UNSUBSCRIBE",
                Self::Success => "SUCCESS",
                Self::Error => "ERROR",
                Self::CloseProducer => "CLOSE_PRODUCER",
                Self::CloseConsumer => "CLOSE_CONSUMER",
                Self::ProducerSuccess => "PRODUCER_SUCCESS",
                Self::Ping => "PING",
                Self::Pong => "PONG",
                Self::RedeliverUnacknowledgedMessages => "REDELIVER_UNACKNOWLEDGED_MESSAGES",
                Self::PartitionedMetadata => "PARTITIONED_METADATA",
                Self::PartitionedMetadataResponse => "PARTITIONED_METADATA_RESPONSE",
                Self::Lookup => "LOOKUP",
                Self::LookupResponse => "LOOKUP_RESPONSE",
                Self::ConsumerStats => "CONSUMER_STATS",
                Self::ConsumerStatsResponse => "CONSUMER_STATS_RESPONSE",
                Self::ReachedEndOfTopic => "REACHED_END_OF_TOPIC",
                Self::Seek => "SEEK",
                Self::GetLastMessageId => "GET_LAST_MESSAGE_ID",
                Self::GetLastMessageIdResponse => "GET_LAST_MESSAGE_ID_RESPONSE",
                Self::ActiveConsumerChange => "ACTIVE_CONSUMER_CHANGE",
                Self::GetTopicsOfNamespace => "GET_TOPICS_OF_NAMESPACE",
                Self::GetTopicsOfNamespaceResponse => "GET_TOPICS_OF_NAMESPACE_RESPONSE",
                Self::GetSchema => "GET_SCHEMA",
                Self::GetSchemaResponse => "GET_SCHEMA_RESPONSE",
                Self::AuthChallenge => "AUTH_CHALLENGE",
                Self::AuthResponse => "AUTH_RESPONSE",
                Self::AckResponse => "ACK_RESPONSE",
                Self::GetOrCreateSchema => "GET_OR_CREATE_SCHEMA",
                Self::GetOrCreateSchemaResponse => "GET_OR_CREATE_SCHEMA_RESPONSE",
                Self::NewTxn => "NEW_TXN",
                Self::NewTxnResponse => "NEW_TXN_RESPONSE",
                Self::AddPartitionToTxn => "ADD_PARTITION_TO_TXN",
                Self::AddPartitionToTxnResponse => "ADD_PARTITION_TO_TXN_RESPONSE",
                Self::AddSubscriptionToTxn => "ADD_SUBSCRIPTION_TO_TXN",
                Self::AddSubscriptionToTxnResponse => "ADD_SUBSCRIPTION_TO_TXN_RESPONSE",
                Self::EndTxn => "END_TXN",
                Self::EndTxnResponse => "END_TXN_RESPONSE",
                Self::EndTxnOnPartition => "END_TXN_ON_PARTITION",
                Self::EndTxnOnPartitionResponse => "END_TXN_ON_PARTITION_RESPONSE",
                Self::EndTxnOnSubscription => "END_TXN_ON_SUBSCRIPTION",
                Self::EndTxnOnSubscriptionResponse => "END_TXN_ON_SUBSCRIPTION_RESPONSE",
                Self::TcClientConnectRequest => "TC_CLIENT_CONNECT_REQUEST",
                Self::TcClientConnectResponse => "TC_CLIENT_CONNECT_RESPONSE",
            }
        }
        /// The value with this name in PulsarApi.proto, if any.
        pub fn from_str_name(value: &str) -> Option<Self> {
            match value {
                "CONNECT" => Some(Self::Connect),
                "CONNECTED" => Some(Self::Connected),
                "SUBSCRIBE" => Some(Self::Subscribe),
                "PRODUCER" => Some(Self::Producer),
                "SEND" => Some(Self::Send),
                "SEND_RECEIPT" => Some(Self::SendReceipt),
                "SEND_ERROR" => Some(Self::SendError),
                "MESSAGE" => Some(Self::Message),
                "ACK" => Some(Self::Ack),
                "FLOW" => Some(Self::Flow),
                "UNSUBSCRIBE" => Some(Self::Unsubscribe),
                "SUCCESS" => Some(Self::Success),
                "ERROR" => Some(Self::Error),
                "CLOSE_PRODUCER" => Some(Self::CloseProducer),
                "CLOSE_CONSUMER" => Some(Self::CloseConsumer),
                "PRODUCER_SUCCESS" => Some(Self::ProducerSuccess),
                "PING" => Some(Self::Ping),
                "PONG" => Some(Self::Pong),
                "REDELIVER_UNACKNOWLEDGED_MESSAGES" => Some(Self::RedeliverUnacknowledgedMessages),
                "PARTITIONED_METADATA" => Some(Self::PartitionedMetadata),
                "PARTITIONED_METADATA_RESPONSE" => Some(Self::PartitionedMetadataResponse),
                "LOOKUP" => Some(Self::Lookup),
                "LOOKUP_RESPONSE" => Some(Self::LookupResponse),
                "CONSUMER_STATS" => Some(Self::ConsumerStats),
                "CONSUMER_STATS_RESPONSE" => Some(Self::ConsumerStatsResponse),
                "REACHED_END_OF_TOPIC" => Some(Self::ReachedEndOfTopic),
                "SEEK" => Some(Self::Seek),
                "GET_LAST_MESSAGE_ID" => Some(Self::GetLastMessageId),
                "GET_LAST_MESSAGE_ID_RESPONSE" => Some(Self::GetLastMessageIdResponse),
                "ACTIVE_CONSUMER_CHANGE" => Some(Self::ActiveConsumerChange),
                "GET_TOPICS_OF_NAMESPACE" => Some(Self::GetTopicsOfNamespace),
                "GET_TOPICS_OF_NAMESPACE_RESPONSE" => Some(Self::GetTopicsOfNamespaceResponse),
                "GET_SCHEMA" => Some(Self::GetSchema),
                "GET_SCHEMA_RESPONSE" => Some(Self::GetSchemaResponse),
                "AUTH_CHALLENGE" => Some(Self::AuthChallenge),
                "AUTH_RESPONSE" => Some(Self::AuthResponse),
                "ACK_RESPONSE" => Some(Self::AckResponse),
                "GET_OR_CREATE_SCHEMA" => Some(Self::GetOrCreateSchema),
                "GET_OR_CREATE_SCHEMA_RESPONSE" => Some(Self::GetOrCreateSchemaResponse),
                "NEW_TXN" => Some(Self::NewTxn),
                "NEW_TXN_RESPONSE" => Some(Self::NewTxnResponse),
                "ADD_PARTITION_TO_TXN" => Some(Self::AddPartitionToTxn),
                "ADD_PARTITION_TO_TXN_RESPONSE" => Some(Self::AddPartitionToTxnResponse),
                "ADD_SUBSCRIPTION_TO_TXN" => Some(Self::AddSubscriptionToTxn),
                "ADD_SUBSCRIPTION_TO_TXN_RESPONSE" => Some(Self::AddSubscriptionToTxnResponse),
                "END_TXN" => Some(Self::EndTxn),
                "END_TXN_RESPONSE" => Some(Self::EndTxnResponse),
                "END_TXN_ON_PARTITION" => Some(Self::EndTxnOnPartition),
                "END_TXN_ON_PARTITION_RESPONSE" => Some(Self::EndTxnOnPartitionResponse),
                "END_TXN_ON_SUBSCRIPTION" => Some(Self::EndTxnOnSubscription),
                "END_TXN_ON_SUBSCRIPTION_RESPONSE" => Some(Self::EndTxnOnSubscriptionResponse),
                "TC_CLIENT_CONNECT_REQUEST" => Some(Self::TcClientConnectRequest),
                "TC_CLIENT_CONNECT_RESPONSE" => Some(Self::TcClientConnectResponse),
                _ => None,
            }
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum CompressionType {
    None = 0,
    Lz4 = 1,
    Zlib = 2,
    Zstd = 3,
    Snappy = 4,
}
impl CompressionType {
    /// The name of this value in PulsarApi.proto.
    pub fn as_str_name(&self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Lz4 => "LZ4",
            Self::Zlib => "ZLIB",
            Self::Zstd => "ZSTD",
            Self::Snappy => "SNAPPY",
        }
    }
    /// The value with this name in PulsarApi.proto, if any.
    pub fn from_str_name(value: &str) -> Option<Self> {
        match value {
            "NONE" => Some(Self::None),
            "LZ4" => Some(Self::Lz4),
            "ZLIB" => Some(Self::Zlib),
            "ZSTD" => Some(Self::Zstd),
            "SNAPPY" => Some(Self::Snappy),
            _ => None,
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum ProducerAccessMode {
    /// By default multiple producers can publish on a topic
    Shared = 0,
    /// Require exclusive access for producer. Fail immediately if there's already a producer connected.
    Exclusive = 1,
    /// Producer creation is pending until it can acquire exclusive access
    WaitForExclusive = 2,
    /// Require exclusive access for producer. Fence out old producer.
    ExclusiveWithFencing = 3,
}
impl ProducerAccessMode {
    /// The name of this value in PulsarApi.proto.
    pub fn as_str_name(&self) -> &'static str {
        match self {
            Self::Shared => "Shared",
            Self::Exclusive => "Exclusive",
            Self::WaitForExclusive => "WaitForExclusive",
            Self::ExclusiveWithFencing => "ExclusiveWithFencing",
        }
    }
    /// The value with this name in PulsarApi.proto, if any.
    pub fn from_str_name(value: &str) -> Option<Self> {
        match value {
            "Shared" => Some(Self::Shared),
            "Exclusive" => Some(Self::Exclusive),
            "WaitForExclusive" => Some(Self::WaitForExclusive),
            "ExclusiveWithFencing" => Some(Self::ExclusiveWithFencing),
            _ => None,
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum ServerError {
    UnknownError = 0,
    /// Error with ZK/metadata
    MetadataError = 1,
    /// Error writing reading from BK
    PersistenceError = 2,
    /// Non valid authentication
    AuthenticationError = 3,
    /// Not authorized to use resource
    AuthorizationError = 4,
    /// Unable to subscribe/unsubscribe because other consumers are connected
    ConsumerBusy = 5,
    /// Any error that requires client retry operation with a fresh lookup
    ServiceNotReady = 6,
    /// Unable to create producer because backlog quota exceeded
    ProducerBlockedQuotaExceededError = 7,
    /// Exception while creating producer because quota exceeded
    ProducerBlockedQuotaExceededException = 8,
    /// Error while verifying message checksum
    ChecksumError = 9,
    /// Error when an older client/version doesn't support a required feature
    UnsupportedVersionError = 10,
    /// Topic not found
    TopicNotFound = 11,
    /// Subscription not found
    SubscriptionNotFound = 12,
    /// Consumer not found
    ConsumerNotFound = 13,
    /// Error with too many simultaneously request
    TooManyRequests = 14,
    /// The topic has been terminated
    TopicTerminatedError = 15,
    /// Producer with same name is already connected
    ProducerBusy = 16,
    /// The topic name is not valid
    InvalidTopicName = 17,
    /// Specified schema was incompatible with topic schema
    IncompatibleSchema = 18,
    /// Dispatcher assign consumer error
    ConsumerAssignError = 19,
    /// Transaction coordinator not found error
    TransactionCoordinatorNotFound = 20,
    /// Invalid txn status error
    InvalidTxnStatus = 21,
    /// Not allowed error
    NotAllowedError = 22,
    /// Ack with transaction conflict
    TransactionConflict = 23,
    /// Transaction not found
    TransactionNotFound = 24,
    /// When a producer asks and fails to get exclusive producer access, or
    /// loses the exclusive status after a reconnection: the producer is now
    /// permanently fenced, and the application should close it and create a
    /// new one
    ProducerFenced = 25,
}
impl ServerError {
    /// The name of this value in PulsarApi.proto.
    pub fn as_str_name(&self) -> &'static str {
        match self {
            Self::UnknownError => "UnknownError",
            Self::MetadataError => "MetadataError",
            Self::PersistenceError => "PersistenceError",
            Self::AuthenticationError => "AuthenticationError",
            Self::AuthorizationError => "AuthorizationError",
            Self::ConsumerBusy => "ConsumerBusy",
            Self::ServiceNotReady => "ServiceNotReady",
            Self::ProducerBlockedQuotaExceededError => "ProducerBlockedQuotaExceededError",
            Self::ProducerBlockedQuotaExceededException => "ProducerBlockedQuotaExceededException",
            Self::ChecksumError => "ChecksumError",
            Self::UnsupportedVersionError => "UnsupportedVersionError",
            Self::TopicNotFound => "TopicNotFound",
            Self::SubscriptionNotFound => "SubscriptionNotFound",
            Self::ConsumerNotFound => "ConsumerNotFound",
            Self::TooManyRequests => "TooManyRequests",
            Self::TopicTerminatedError => "TopicTerminatedError",
            Self::ProducerBusy => "ProducerBusy",
            Self::InvalidTopicName => "InvalidTopicName",
            Self::IncompatibleSchema => "IncompatibleSchema",
            Self::ConsumerAssignError => "ConsumerAssignError",
            Self::TransactionCoordinatorNotFound => "TransactionCoordinatorNotFound",
            Self::InvalidTxnStatus => "InvalidTxnStatus",
            Self::NotAllowedError => "NotAllowedError",
            Self::TransactionConflict => "TransactionConflict",
            Self::TransactionNotFound => "TransactionNotFound",
            Self::ProducerFenced => "ProducerFenced",
        }
    }
    /// The value with this name in PulsarApi.proto, if any.
    pub fn from_str_name(value: &str) -> Option<Self> {
        match value {
            "UnknownError" => Some(Self::UnknownError),
            "MetadataError" => Some(Self::MetadataError),
            "PersistenceError" => Some(Self::PersistenceError),
            "AuthenticationError" => Some(Self::AuthenticationError),
            "AuthorizationError" => Some(Self::AuthorizationError),
            "ConsumerBusy" => Some(Self::ConsumerBusy),
            "ServiceNotReady" => Some(Self::ServiceNotReady),
            "ProducerBlockedQuotaExceededError" => Some(Self::ProducerBlockedQuotaExceededError),
            "ProducerBlockedQuotaExceededException" => Some(Self::ProducerBlockedQuotaExceededException),
            "ChecksumError" => Some(Self::ChecksumError),
            "UnsupportedVersionError" => Some(Self::UnsupportedVersionError),
            "TopicNotFound" => Some(Self::TopicNotFound),
            "SubscriptionNotFound" => Some(Self::SubscriptionNotFound),
            "ConsumerNotFound" => Some(Self::ConsumerNotFound),
            "TooManyRequests" => Some(Self::TooManyRequests),
            "TopicTerminatedError" => Some(Self::TopicTerminatedError),
            "ProducerBusy" => Some(Self::ProducerBusy),
            "InvalidTopicName" => Some(Self::InvalidTopicName),
            "IncompatibleSchema" => Some(Self::IncompatibleSchema),
            "ConsumerAssignError" => Some(Self::ConsumerAssignError),
            "TransactionCoordinatorNotFound" => Some(Self::TransactionCoordinatorNotFound),
            "InvalidTxnStatus" => Some(Self::InvalidTxnStatus),
            "NotAllowedError" => Some(Self::NotAllowedError),
            "TransactionConflict" => Some(Self::TransactionConflict),
            "TransactionNotFound" => Some(Self::TransactionNotFound),
            "ProducerFenced" => Some(Self::ProducerFenced),
            _ => None,
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum AuthMethod {
    None = 0,
    YcaV1 = 1,
    Athens = 2,
}
impl AuthMethod {
    /// The name of this value in PulsarApi.proto.
    pub fn as_str_name(&self) -> &'static str {
        match self {
            Self::None => "AuthMethodNone",
            Self::YcaV1 => "AuthMethodYcaV1",
            Self::Athens => "AuthMethodAthens",
        }
    }
    /// The value with this name in PulsarApi.proto, if any.
    pub fn from_str_name(value: &str) -> Option<Self> {
        match value {
            "AuthMethodNone" => Some(Self::None),
            "AuthMethodYcaV1" => Some(Self::YcaV1),
            "AuthMethodAthens" => Some(Self::Athens),
            _ => None,
        }
    }
}
/// Each protocol version identify new features that are
/// incrementally added to the protocol
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum ProtocolVersion {
    /// Initial versioning
    V0 = 0,
    /// Added application keep-alive
    V1 = 1,
    /// Added RedeliverUnacknowledgedMessages Command
    V2 = 2,
    /// Added compression with LZ4 and ZLib
    V3 = 3,
    /// Added batch message support
    V4 = 4,
    /// Added disconnect client w/o closing connection
    V5 = 5,
    /// Added checksum computation for metadata + payload
    V6 = 6,
    /// Added CommandLookupTopic - Binary Lookup
    V7 = 7,
    /// Added CommandConsumerStats - Client fetches broker side consumer stats
    V8 = 8,
    /// Added end of topic notification
    V9 = 9,
    /// Added proxy to broker
    V10 = 10,
    /// C++ consumers before this version are not correctly handling the checksum field
    V11 = 11,
    /// Added get topic's last messageId from broker
    V12 = 12,
    /// Added CommandActiveConsumerChange and CommandGetTopicsOfNamespace;
    /// schema registry: added avro schema format for json
    V13 = 13,
    /// Add CommandAuthChallenge and CommandAuthResponse for mutual auth
    V14 = 14,
    /// Added Key_Shared subscription, CommandGetOrCreateSchema and
    /// CommandGetOrCreateSchemaResponse
    V15 = 15,
    /// Add support for broker entry metadata
    V16 = 16,
    /// Added support ack receipt
    V17 = 17,
    /// Add client support for broker entry metadata
    V18 = 18,
    /// Add CommandTcClientConnectRequest and CommandTcClientConnectResponse
    V19 = 19,
}
impl ProtocolVersion {
    /// The name of this value in PulsarApi.proto.
    pub fn as_str_name(&self) -> &'static str {
        match self {
            Self::V0 => "v0",
            Self::V1 => "v1",
            Self::V2 => "v2",
            Self::V3 => "v3",
            Self::V4 => "v4",
            Self::V5 => "v5",
            Self::V6 => "v6",
            Self::V7 => "v7",
            Self::V8 => "v8",
            Self::V9 => "v9",
            Self::V10 => "v10",
            Self::V11 => "v11",
            Self::V12 => "v12",
            Self::V13 => "v13",
            Self::V14 => "v14",
            Self::V15 => "v15",
            Self::V16 => "v16",
            Self::V17 => "v17",
            Self::V18 => "v18",
            Self::V19 => "v19",
        }
    }
    /// The value with this name in PulsarApi.proto, if any.
    pub fn from_str_name(value: &str) -> Option<Self> {
        match value {
            "v0" => Some(Self::V0),
            "v1" => Some(Self::V1),
            "v2" => Some(Self::V2),
            "v3" => Some(Self::V3),
            "v4" => Some(Self::V4),
            "v5" => Some(Self::V5),
            "v6" => Some(Self::V6),
            "v7" => Some(Self::V7),
            "v8" => Some(Self::V8),
            "v9" => Some(Self::V9),
            "v10" => Some(Self::V10),
            "v11" => Some(Self::V11),
            "v12" => Some(Self::V12),
            "v13" => Some(Self::V13),
            "v14" => Some(Self::V14),
            "v15" => Some(Self::V15),
            "v16" => Some(Self::V16),
            "v17" => Some(Self::V17),
            "v18" => Some(Self::V18),
            "v19" => Some(Self::V19),
            _ => None,
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum KeySharedMode {
    AutoSplit = 0,
    Sticky = 1,
}
impl KeySharedMode {
    /// The name of this value in PulsarApi.proto.
    pub fn as_str_name(&self) -> &'static str {
        match self {
            Self::AutoSplit => "AUTO_SPLIT",
            Self::Sticky => "STICKY",
        }
    }
    /// The value with this name in PulsarApi.proto, if any.
    pub fn from_str_name(value: &str) -> Option<Self> {
        match value {
            "AUTO_SPLIT" => Some(Self::AutoSplit),
            "STICKY" => Some(Self::Sticky),
            _ => None,
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum TxnAction {
    Commit = 0,
    Abort = 1,
}
impl TxnAction {
    /// The name of this value in PulsarApi.proto.
    pub fn as_str_name(&self) -> &'static str {
        match self {
            Self::Commit => "COMMIT",
            Self::Abort => "ABORT",
        }
    }
    /// The value with this name in PulsarApi.proto, if any.
    pub fn from_str_name(value: &str) -> Option<Self> {
        match value {
            "COMMIT" => Some(Self::Commit),
            "ABORT" => Some(Self::Abort),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::base_command::Type;
    use super::*;

    /// Encodes `message` and checks its bytes, then decodes those bytes and
    /// checks that they give `message` back and re-encode to themselves.
    fn check<M: prost::Message + Default + PartialEq>(message: &M, bytes: &[u8]) -> M {
        assert_eq!(message.encode_to_vec(), bytes, "{message:?}");
        let decoded = M::decode(bytes).expect("decodes");
        assert_eq!(&decoded, message);
        assert_eq!(decoded.encode_to_vec(), bytes);
        decoded
    }

    #[test]
    fn commands_have_pulsars_bytes() {
        // type (1, varint) = PING (18); ping (18, length-delimited: key
        // 18 << 3 | 2 = 146 = 0x92 0x01), empty.
        let ping = BaseCommand { r#type: Type::Ping as i32, ping: Some(CommandPing {}), ..Default::default() };
        check(&ping, &[0x08, 0x12, 0x92, 0x01, 0x00]);

        // type = SEND (6); send (6: key 0x32) = { producer_id (1) = 1, sequence_id (2) = 2 }.
        let send = BaseCommand {
            r#type: Type::Send as i32,
            send: Some(CommandSend { producer_id: 1, sequence_id: 2, ..Default::default() }),
            ..Default::default()
        };
        let send = check(&send, &[0x08, 0x06, 0x32, 0x04, 0x08, 0x01, 0x10, 0x02]).send.expect("send");
        assert_eq!(send.num_messages(), 1);
        assert_eq!(send.highest_sequence_id(), 0);
        assert!(!send.is_chunk());

        // type = SEEK (28); seek (28: key 0xe2 0x01) = { consumer_id = 3, request_id = 7 }.
        let seek = BaseCommand {
            r#type: Type::Seek as i32,
            seek: Some(CommandSeek { consumer_id: 3, request_id: 7, ..Default::default() }),
            ..Default::default()
        };
        check(&seek, &[0x08, 0x1c, 0xe2, 0x01, 0x04, 0x08, 0x03, 0x10, 0x07]);

        // The last command: TC_CLIENT_CONNECT_REQUEST (62; key 0xf2 0x03); its
        // tc_id is required, so it is written even though it is 0.
        let tc = BaseCommand {
            r#type: Type::TcClientConnectRequest as i32,
            tc_client_connect_request: Some(CommandTcClientConnectRequest { request_id: 5, tc_id: 0 }),
            ..Default::default()
        };
        check(&tc, &[0x08, 0x3e, 0xf2, 0x03, 0x04, 0x08, 0x05, 0x10, 0x00]);
        assert_eq!(Type::TcClientConnectRequest.as_str_name(), "TC_CLIENT_CONNECT_REQUEST");
        assert_eq!(
            Type::from_str_name("REDELIVER_UNACKNOWLEDGED_MESSAGES"),
            Some(Type::RedeliverUnacknowledgedMessages)
        );
    }

    #[test]
    fn an_unknown_command_keeps_its_type_number() {
        // type = 99, then field 64 (key 0x82 0x04) with an empty message: a
        // command from a newer protocol.
        let command = BaseCommand::decode(&[0x08, 0x63, 0x82, 0x04, 0x00][..]).expect("decodes");
        assert_eq!(command.r#type, 99);
        assert!(Type::try_from(command.r#type).is_err());
        assert_eq!(command.encode_to_vec(), [0x08, 0x63]);
    }

    #[test]
    fn metadata_with_compression_and_chunks_has_pulsars_bytes() {
        let metadata = MessageMetadata {
            producer_name: "p".into(),
            sequence_id: 3,
            publish_time: 1000,
            compression: Some(CompressionType::Lz4 as i32),
            uncompressed_size: Some(300),
            uuid: Some("u".into()),
            num_chunks_from_msg: Some(2),
            total_chunk_msg_size: Some(10),
            chunk_id: Some(1),
            ..Default::default()
        };
        let bytes = [
            0x0a, 0x01, b'p', // producer_name (1)
            0x10, 0x03, // sequence_id (2)
            0x18, 0xe8, 0x07, // publish_time (3) = 1000
            0x40, 0x01, // compression (8) = LZ4
            0x48, 0xac, 0x02, // uncompressed_size (9) = 300
            0xd2, 0x01, 0x01, b'u', // uuid (26)
            0xd8, 0x01, 0x02, // num_chunks_from_msg (27)
            0xe0, 0x01, 0x0a, // total_chunk_msg_size (28)
            0xe8, 0x01, 0x01, // chunk_id (29)
        ];
        let decoded = check(&metadata, &bytes);
        assert_eq!(decoded.compression(), CompressionType::Lz4);
        assert_eq!(decoded.num_messages_in_batch(), 1);
        assert_eq!(decoded.event_time(), 0);
        assert!(!decoded.partition_key_b64_encoded());
        assert!(!decoded.null_value());

        // The defaults, and an unknown codec read as the default.
        let plain = MessageMetadata { compression: Some(99), ..Default::default() };
        assert_eq!(plain.compression(), CompressionType::None);
        assert_eq!(MessageMetadata::default().compression(), CompressionType::None);
    }

    #[test]
    fn subscribe_with_key_shared_meta_has_pulsars_bytes() {
        let subscribe = CommandSubscribe {
            topic: "t".into(),
            subscription: "s".into(),
            sub_type: command_subscribe::SubType::KeyShared as i32,
            consumer_id: 1,
            request_id: 2,
            key_shared_meta: Some(KeySharedMeta {
                key_shared_mode: KeySharedMode::Sticky as i32,
                hash_ranges: vec![IntRange { start: 0, end: 65535 }],
                allow_out_of_order_delivery: None,
            }),
            ..Default::default()
        };
        let bytes = [
            0x0a, 0x01, b't', // topic (1)
            0x12, 0x01, b's', // subscription (2)
            0x18, 0x03, // sub_type (3) = Key_Shared
            0x20, 0x01, // consumer_id (4)
            0x28, 0x02, // request_id (5)
            0x8a, 0x01, 0x0a, // key_shared_meta (17), 10 bytes:
            0x08, 0x01, // key_shared_mode (1) = STICKY
            0x1a, 0x06, // hash_ranges (3), 6 bytes:
            0x08, 0x00, // start (1) = 0, required so written
            0x10, 0xff, 0xff, 0x03, // end (2) = 65535
        ];
        let decoded = check(&subscribe, &bytes);
        assert_eq!(decoded.sub_type(), command_subscribe::SubType::KeyShared);
        assert_eq!(decoded.initial_position(), command_subscribe::InitialPosition::Latest);
        assert!(decoded.durable());
        assert!(decoded.force_topic_creation());
        assert!(!decoded.replicate_subscription_state());
        let meta = decoded.key_shared_meta.expect("key_shared_meta");
        assert_eq!(meta.key_shared_mode(), KeySharedMode::Sticky);
        assert!(!meta.allow_out_of_order_delivery());
    }

    #[test]
    fn repeated_scalars_are_unpacked_and_defaults_are_pulsars() {
        // ack_set (5) is written one varint per value, as proto2 does.
        let id = MessageIdData { ledger_id: 1, entry_id: 2, ack_set: vec![5, 6], ..Default::default() };
        let id = check(&id, &[0x08, 0x01, 0x10, 0x02, 0x28, 0x05, 0x28, 0x06]);
        assert_eq!(id.partition(), -1);
        assert_eq!(id.batch_index(), -1);

        let producer = CommandProducer::default();
        assert_eq!(producer.producer_access_mode(), ProducerAccessMode::Shared);
        assert!(producer.user_provided_producer_name());
        assert!(!producer.txn_enabled());
        assert_eq!(CommandProducerSuccess::default().last_sequence_id(), -1);
        assert!(CommandProducerSuccess::default().producer_ready());
        assert_eq!(CommandAck::default().ack_type(), command_ack::AckType::Individual);
        assert_eq!(CommandGetTopicsOfNamespace::default().mode(), command_get_topics_of_namespace::Mode::Persistent);
        assert!(CommandGetTopicsOfNamespaceResponse::default().changed());
    }
}
