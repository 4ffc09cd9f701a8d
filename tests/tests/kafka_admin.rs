//! The Kafka admin APIs against the real broker binary: topic configs
//! (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs), DeleteRecords,
//! CreatePartitions, DescribeCluster and OffsetForLeaderEpoch, each checked by
//! its effect as other APIs (Metadata, ListOffsets, Fetch, Produce) see it.

use bytes::Bytes;
use kafka_protocol::{
    messages::{
        alter_configs_request::{AlterConfigsResource, AlterableConfig},
        create_partitions_request::CreatePartitionsTopic,
        create_topics_request::CreatableTopic,
        delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic},
        describe_configs_request::DescribeConfigsResource,
        describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult},
        fetch_request::{FetchPartition, FetchTopic},
        incremental_alter_configs_request as incremental,
        list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
        metadata_request::MetadataRequestTopic,
        offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic},
        AlterConfigsRequest, AlterConfigsResponse, ApiKey, CreatePartitionsRequest, CreatePartitionsResponse,
        CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DescribeClusterRequest,
        DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse, FetchRequest, FetchResponse,
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ListOffsetsRequest, ListOffsetsResponse,
        MetadataRequest, MetadataResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
    },
    protocol::StrBytes,
};
use polyport_tests::{
    kafka::{self, record_batch, KafkaConn},
    kafka_library, Broker,
};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;

fn broker() -> Broker {
    Broker::configure("", &[&kafka_library()]).start()
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn topic_name(text: &str) -> TopicName {
    TopicName(s(text))
}

fn create_topic(conn: &mut KafkaConn, name: &str, partitions: i32) {
    let request = CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    let c = conn.send(ApiKey::CreateTopics, 7, &request);
    let response: CreateTopicsResponse = conn.receive(ApiKey::CreateTopics, 7, c);
    assert_eq!(response.topics[0].error_code, 0, "{:?}", response.topics[0].error_message);
}

/// Produces one batch per value to `partition`; returns the base offsets.
fn produce(conn: &mut KafkaConn, topic: &str, partition: i32, values: &[&str]) -> Vec<i64> {
    values
        .iter()
        .map(|value| {
            let batch = record_batch(&[Bytes::copy_from_slice(value.as_bytes())], -1, -1, -1, 1_700_000_000_000);
            let (code, offset) = kafka::produce(conn, topic, partition, -1, batch.freeze()).expect("answered");
            assert_eq!(code, 0, "produce to {topic}-{partition}");
            offset
        })
        .collect()
}

/// ListOffsets v7 for one partition: (error code, offset).
fn list_offset(conn: &mut KafkaConn, topic: &str, partition: i32, timestamp: i64) -> (i16, i64) {
    let request =
        ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])]);
    let c = conn.send(ApiKey::ListOffsets, 7, &request);
    let response: ListOffsetsResponse = conn.receive(ApiKey::ListOffsets, 7, c);
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset)
}

fn describe(
    conn: &mut KafkaConn,
    version: i16,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> DescribeConfigsResult {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect()));
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
    let c = conn.send(ApiKey::DescribeConfigs, version, &request);
    let mut response: DescribeConfigsResponse = conn.receive(ApiKey::DescribeConfigs, version, c);
    assert_eq!(response.results.len(), 1);
    response.results.remove(0)
}

fn config<'a>(result: &'a DescribeConfigsResult, name: &str) -> &'a DescribeConfigsResourceResult {
    result.configs.iter().find(|c| c.name.as_str() == name).unwrap_or_else(|| panic!("{name} in {result:?}"))
}

/// (value, source) of `name` on topic `topic`.
fn topic_config(conn: &mut KafkaConn, topic: &str, name: &str) -> (Option<String>, i8) {
    let result = describe(conn, 4, TOPIC, topic, None);
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    let c = config(&result, name);
    (c.value.as_ref().map(|v| v.as_str().to_owned()), c.config_source)
}

/// Legacy AlterConfigs of one resource: (error code, message).
fn alter(
    conn: &mut KafkaConn,
    version: i16,
    resource_type: i8,
    name: &str,
    configs: &[(&str, &str)],
    validate_only: bool,
) -> (i16, String) {
    let resource =
        AlterConfigsResource::default().with_resource_type(resource_type).with_resource_name(s(name)).with_configs(
            configs.iter().map(|(k, v)| AlterableConfig::default().with_name(s(k)).with_value(Some(s(v)))).collect(),
        );
    let request = AlterConfigsRequest::default().with_resources(vec![resource]).with_validate_only(validate_only);
    let c = conn.send(ApiKey::AlterConfigs, version, &request);
    let response: AlterConfigsResponse = conn.receive(ApiKey::AlterConfigs, version, c);
    let r = &response.responses[0];
    assert_eq!(r.resource_name.as_str(), name);
    (r.error_code, r.error_message.as_ref().map(|m| m.as_str().to_owned()).unwrap_or_default())
}

/// IncrementalAlterConfigs of one topic: (error code, message).
fn alter_incrementally(
    conn: &mut KafkaConn,
    version: i16,
    topic: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, String) {
    let resource = incremental::AlterConfigsResource::default()
        .with_resource_type(TOPIC)
        .with_resource_name(s(topic))
        .with_configs(
            ops.iter()
                .map(|(k, op, v)| {
                    incremental::AlterableConfig::default()
                        .with_name(s(k))
                        .with_config_operation(*op)
                        .with_value(v.map(s))
                })
                .collect(),
        );
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
    let c = conn.send(ApiKey::IncrementalAlterConfigs, version, &request);
    let response: IncrementalAlterConfigsResponse = conn.receive(ApiKey::IncrementalAlterConfigs, version, c);
    let r = &response.responses[0];
    (r.error_code, r.error_message.as_ref().map(|m| m.as_str().to_owned()).unwrap_or_default())
}

fn metadata_partitions(conn: &mut KafkaConn, topic: &str) -> (i16, usize) {
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name(topic)))]));
    let c = conn.send(ApiKey::Metadata, 12, &request);
    let response: MetadataResponse = conn.receive(ApiKey::Metadata, 12, c);
    (response.topics[0].error_code, response.topics[0].partitions.len())
}

#[test]
fn topic_configs_are_described_altered_and_reset() {
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    create_topic(&mut conn, "cfg", 1);

    // Nothing set: the inherited values, as defaults.
    let (default_ms, source) = topic_config(&mut conn, "cfg", "retention.ms");
    assert_eq!(source, DEFAULT_CONFIG);
    let default_ms = default_ms.expect("a value in force");
    let (default_bytes, source) = topic_config(&mut conn, "cfg", "retention.bytes");
    assert_eq!(source, DEFAULT_CONFIG);
    let all = describe(&mut conn, 1, TOPIC, "cfg", None);
    let names: Vec<&str> = all.configs.iter().map(|c| c.name.as_str()).collect();
    for name in ["retention.ms", "retention.bytes", "cleanup.policy", "max.message.bytes", "message.timestamp.type"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert_eq!(config(&all, "cleanup.policy").value.as_deref(), Some("delete"));
    assert!(!config(&all, "max.message.bytes").read_only, "a topic may set its own");
    assert!(!config(&all, "retention.ms").read_only);
    // Only the keys asked for; unknown ones are absent.
    let some = describe(&mut conn, 3, TOPIC, "cfg", Some(&["retention.bytes", "no.such.config"]));
    assert_eq!(some.configs.len(), 1);
    assert_eq!(some.configs[0].name.as_str(), "retention.bytes");

    // AlterConfigs sets retention.ms: DescribeConfigs echoes it as the topic's own.
    assert_eq!(alter(&mut conn, 0, TOPIC, "cfg", &[("retention.ms", "3600000")], false), (0, String::new()));
    assert_eq!(topic_config(&mut conn, "cfg", "retention.ms"), (Some("3600000".into()), DYNAMIC_TOPIC_CONFIG));
    assert_eq!(topic_config(&mut conn, "cfg", "retention.bytes"), (default_bytes.clone(), DEFAULT_CONFIG));
    let v1 = describe(&mut conn, 1, TOPIC, "cfg", Some(&["retention.ms"]));
    assert_eq!(v1.configs[0].value.as_deref(), Some("3600000"));

    // validate_only changes nothing; refused values and keys change nothing.
    assert_eq!(alter(&mut conn, 2, TOPIC, "cfg", &[("retention.ms", "60000")], true).0, 0);
    let (code, message) = alter(&mut conn, 1, TOPIC, "cfg", &[("retention.ms", "-7")], false);
    assert_eq!(code, INVALID_CONFIG);
    assert!(message.contains("retention.ms") && message.contains("-7"), "{message}");
    let (code, message) = alter(&mut conn, 1, TOPIC, "cfg", &[("retention.ms", "1"), ("no.such", "1000")], false);
    assert_eq!(code, INVALID_CONFIG);
    assert!(message.contains("no.such") && message.contains("unsupported"), "{message}");
    assert_eq!(topic_config(&mut conn, "cfg", "retention.ms"), (Some("3600000".into()), DYNAMIC_TOPIC_CONFIG));

    // IncrementalAlterConfigs: SET one key keeps the other; DELETE restores the default.
    assert_eq!(alter_incrementally(&mut conn, 1, "cfg", &[("retention.bytes", 0, Some("1048576"))]).0, 0);
    assert_eq!(topic_config(&mut conn, "cfg", "retention.ms"), (Some("3600000".into()), DYNAMIC_TOPIC_CONFIG));
    assert_eq!(topic_config(&mut conn, "cfg", "retention.bytes"), (Some("1048576".into()), DYNAMIC_TOPIC_CONFIG));
    assert_eq!(alter_incrementally(&mut conn, 0, "cfg", &[("retention.ms", 1, None)]).0, 0);
    assert_eq!(topic_config(&mut conn, "cfg", "retention.ms"), (Some(default_ms.clone()), DEFAULT_CONFIG));
    assert_eq!(topic_config(&mut conn, "cfg", "retention.bytes"), (Some("1048576".into()), DYNAMIC_TOPIC_CONFIG));
    let (code, message) = alter_incrementally(&mut conn, 1, "cfg", &[("cleanup.policy", 0, Some("compact"))]);
    assert_eq!(code, INVALID_CONFIG);
    assert!(message.contains("cleanup.policy"), "{message}");
    assert_eq!(alter_incrementally(&mut conn, 1, "cfg", &[("retention.ms", 2, Some("5"))]).0, INVALID_REQUEST);

    // The legacy API replaces the whole set: retention.bytes, left out, goes back to inheriting.
    assert_eq!(alter(&mut conn, 2, TOPIC, "cfg", &[("retention.ms", "-1")], false).0, 0);
    assert_eq!(topic_config(&mut conn, "cfg", "retention.ms"), (Some("-1".into()), DYNAMIC_TOPIC_CONFIG));
    assert_eq!(topic_config(&mut conn, "cfg", "retention.bytes"), (default_bytes, DEFAULT_CONFIG));

    // Unknown topics, and the broker resource.
    assert_eq!(describe(&mut conn, 4, TOPIC, "missing", None).error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(alter(&mut conn, 0, TOPIC, "missing", &[("retention.ms", "1")], false).0, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(
        alter_incrementally(&mut conn, 1, "missing", &[("retention.ms", 1, None)]).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let broker_configs = describe(&mut conn, 4, BROKER, "0", None);
    assert_eq!(broker_configs.error_code, 0);
    assert_eq!(config(&broker_configs, "message.max.bytes").value.as_deref(), Some("5242880"));
    assert!(config(&broker_configs, "message.max.bytes").read_only);
    assert_eq!(describe(&mut conn, 4, BROKER, "7", None).error_code, INVALID_REQUEST);
    let (code, message) = alter(&mut conn, 0, BROKER, "0", &[("message.max.bytes", "1")], false);
    assert_eq!(code, INVALID_REQUEST);
    assert!(message.contains("broker.conf"), "{message}");
}

#[test]
fn delete_records_moves_the_log_start_for_list_offsets_and_fetch() {
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    create_topic(&mut conn, "dr", 2);
    let values: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    assert_eq!(produce(&mut conn, "dr", 1, &values), (0..10).collect::<Vec<i64>>());

    let delete = |conn: &mut KafkaConn, version: i16, topic: &str, partition: i32, offset: i64| {
        let request =
            DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset)])]);
        let c = conn.send(ApiKey::DeleteRecords, version, &request);
        let response: DeleteRecordsResponse = conn.receive(ApiKey::DeleteRecords, version, c);
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    };
    assert_eq!(delete(&mut conn, 2, "dr", 1, 4), (0, 4));
    assert_eq!(list_offset(&mut conn, "dr", 1, -2), (0, 4));
    assert_eq!(list_offset(&mut conn, "dr", 1, -1), (0, 10));
    // Below the start is a no-op; above the end, a bad partition or topic, errors.
    assert_eq!(delete(&mut conn, 0, "dr", 1, 2), (0, 4));
    assert_eq!(delete(&mut conn, 1, "dr", 1, 11), (OFFSET_OUT_OF_RANGE, -1));
    assert_eq!(delete(&mut conn, 1, "dr", 1, -5), (OFFSET_OUT_OF_RANGE, -1));
    assert_eq!(delete(&mut conn, 2, "dr", 7, 1).0, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(delete(&mut conn, 2, "missing", 0, 1).0, UNKNOWN_TOPIC_OR_PARTITION);

    let fetch =
        |conn: &mut KafkaConn, offset: i64| {
            let request = FetchRequest::default().with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![
                FetchTopic::default().with_topic(topic_name("dr")).with_partitions(vec![FetchPartition::default()
                    .with_partition(1)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)]),
            ]);
            let c = conn.send(ApiKey::Fetch, 12, &request);
            let response: FetchResponse = conn.receive(ApiKey::Fetch, 12, c);
            let p = &response.responses[0].partitions[0];
            (p.error_code, p.log_start_offset, p.records.as_ref().map_or(0, Bytes::len))
        };
    let (code, start, _) = fetch(&mut conn, 2);
    assert_eq!((code, start), (OFFSET_OUT_OF_RANGE, 4));
    let (code, start, bytes) = fetch(&mut conn, 4);
    assert_eq!((code, start), (0, 4));
    assert!(bytes > 0);

    // -1: everything up to the high watermark.
    assert_eq!(delete(&mut conn, 2, "dr", 1, -1), (0, 10));
    assert_eq!(list_offset(&mut conn, "dr", 1, -2), (0, 10));
    // The other partition is untouched.
    assert_eq!(list_offset(&mut conn, "dr", 0, -2), (0, 0));
}

#[test]
fn create_partitions_grows_a_topic() {
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    create_topic(&mut conn, "cp", 2);
    let grow = |conn: &mut KafkaConn, version: i16, topic: &str, count: i32, validate_only: bool| {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(5000)
            .with_validate_only(validate_only)
            .with_topics(vec![CreatePartitionsTopic::default().with_name(topic_name(topic)).with_count(count)]);
        let c = conn.send(ApiKey::CreatePartitions, version, &request);
        let response: CreatePartitionsResponse = conn.receive(ApiKey::CreatePartitions, version, c);
        let r = &response.results[0];
        (r.error_code, r.error_message.as_ref().map(|m| m.as_str().to_owned()).unwrap_or_default())
    };
    assert_eq!(grow(&mut conn, 3, "cp", 5, true).0, 0);
    assert_eq!(metadata_partitions(&mut conn, "cp"), (0, 2));
    assert_eq!(grow(&mut conn, 0, "cp", 5, false).0, 0);
    assert_eq!(metadata_partitions(&mut conn, "cp"), (0, 5));
    // The new partitions take records.
    assert_eq!(produce(&mut conn, "cp", 4, &["new"]), [0]);
    assert_eq!(list_offset(&mut conn, "cp", 4, -1), (0, 1));

    let (code, message) = grow(&mut conn, 2, "cp", 5, false);
    assert_eq!(code, INVALID_PARTITIONS);
    assert!(message.contains("already has 5"), "{message}");
    assert_eq!(grow(&mut conn, 1, "cp", 3, false).0, INVALID_PARTITIONS);
    assert_eq!(grow(&mut conn, 3, "missing", 3, false).0, UNKNOWN_TOPIC_OR_PARTITION);
    // A non-partitioned Pulsar topic (as auto-created by Metadata v1) cannot grow.
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name("single")))]));
    let c = conn.send(ApiKey::Metadata, 1, &request);
    let _: MetadataResponse = conn.receive(ApiKey::Metadata, 1, c);
    let (code, message) = grow(&mut conn, 3, "single", 3, false);
    assert_eq!(code, INVALID_PARTITIONS);
    assert!(message.contains("non-partitioned"), "{message}");
    assert_eq!(metadata_partitions(&mut conn, "single"), (0, 1));
}

#[test]
fn describe_cluster_and_offset_for_leader_epoch() {
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let c = conn.send(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(Some(vec![])));
    let metadata: MetadataResponse = conn.receive(ApiKey::Metadata, 12, c);
    for version in [0, 1] {
        let c = conn.send(ApiKey::DescribeCluster, version, &DescribeClusterRequest::default());
        let cluster: DescribeClusterResponse = conn.receive(ApiKey::DescribeCluster, version, c);
        assert_eq!(cluster.error_code, 0);
        assert_eq!(Some(&cluster.cluster_id), metadata.cluster_id.as_ref());
        assert_eq!(cluster.controller_id.0, 0);
        assert_eq!(cluster.endpoint_type, 1);
        assert_eq!(cluster.brokers.len(), 1);
        let b = &cluster.brokers[0];
        assert_eq!((b.broker_id.0, b.host.as_str(), b.port), (0, "127.0.0.1", i32::from(broker.kafka_port)));
        assert_eq!(b.rack, None);
    }

    create_topic(&mut conn, "epochs", 1);
    produce(&mut conn, "epochs", 0, &["a", "b", "c"]);
    let ask = |conn: &mut KafkaConn, version: i16, partition: i32, leader_epoch: i32| {
        let request = OffsetForLeaderEpochRequest::default().with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic_name("epochs"))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(0)
                .with_leader_epoch(leader_epoch)])]);
        let c = conn.send(ApiKey::OffsetForLeaderEpoch, version, &request);
        let response: OffsetForLeaderEpochResponse = conn.receive(ApiKey::OffsetForLeaderEpoch, version, c);
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    };
    for version in 2..=4 {
        assert_eq!(ask(&mut conn, version, 0, 0), (0, 0, 3), "v{version}");
    }
    assert_eq!(ask(&mut conn, 4, 0, -1), (0, 0, 3));
    assert_eq!(ask(&mut conn, 4, 0, 1).0, UNKNOWN_LEADER_EPOCH);
    assert_eq!(ask(&mut conn, 3, 9, 0).0, UNKNOWN_TOPIC_OR_PARTITION);
}
