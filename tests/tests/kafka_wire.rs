//! The Kafka handler at the byte level: what real clients negotiate, and what
//! no client should send (unknown APIs, bad sizes, malformed bodies).

use std::time::Duration;

use kafka_protocol::messages::{
    metadata_request::MetadataRequestTopic, ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use polyport_tests::{
    kafka::{correlation_and_error, record_batch, KafkaConn},
    kafka_library, Broker,
};

const UNSUPPORTED_VERSION: i16 = 35;

fn broker() -> Broker {
    Broker::configure("kafkaMaxRequestBytes=65536", &[&kafka_library()]).start()
}

fn api_versions_ok(conn: &mut KafkaConn) -> ApiVersionsResponse {
    let c = conn.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let response: ApiVersionsResponse = conn.receive(ApiKey::ApiVersions, 3, c);
    assert_eq!(response.error_code, 0);
    response
}

#[test]
fn api_versions_lists_exactly_what_is_served() {
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let response = api_versions_ok(&mut conn);
    let listed: Vec<(i16, i16, i16)> =
        response.api_keys.iter().map(|k| (k.api_key, k.min_version, k.max_version)).collect();
    let expected: Vec<(i16, i16, i16)> = kafka::apis::SUPPORTED
        .iter()
        .map(|(k, r)| {
            let listed = kafka::apis::advertised(*k, *r);
            (*k as i16, listed.min, listed.max)
        })
        .collect();
    assert_eq!(listed, expected);
    // Produce from v0, as Kafka 4 lists it (v0-2 are refused when they come).
    for (key, min, max) in [(ApiKey::Produce, 0, 9), (ApiKey::Fetch, 4, 12), (ApiKey::Metadata, 0, 12)] {
        assert!(listed.contains(&(key as i16, min, max)), "{key:?} {min}-{max} in {listed:?}");
    }
}

#[test]
fn metadata_advertises_the_listener_address_and_reports_unknown_topics() {
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    for version in [4, 9, 12] {
        let request = MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str("orders")))),
        ]));
        let c = conn.send(ApiKey::Metadata, version, &request);
        let response: MetadataResponse = conn.receive(ApiKey::Metadata, version, c);
        assert_eq!(response.brokers.len(), 1);
        assert_eq!(response.brokers[0].host.as_str(), "127.0.0.1");
        assert_eq!(response.brokers[0].port, i32::from(broker.kafka_port));
        assert_eq!(response.topics.len(), 1);
        assert_eq!(response.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION at v{version}");
    }
    // Before v4 a request cannot refuse auto-creation, and Kafka created the topic.
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str("orders"))))
    ]));
    let c = conn.send(ApiKey::Metadata, 1, &request);
    let response: MetadataResponse = conn.receive(ApiKey::Metadata, 1, c);
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(response.topics[0].partitions.len(), 1);
}

#[test]
fn unknown_api_key_gets_unsupported_version_and_the_connection_survives() {
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let c = conn.send_frame(9999, 0, &[]);
    assert_eq!(correlation_and_error(conn.read_frame().expect("a reply")), (c, UNSUPPORTED_VERSION));
    // A known API at a version we do not serve, and an API we do not serve at all.
    let c = conn.send_frame(ApiKey::Metadata as i16, 99, &[1, 2, 3]);
    assert_eq!(correlation_and_error(conn.read_frame().expect("a reply")), (c, UNSUPPORTED_VERSION));
    let c = conn.send_frame(ApiKey::ElectLeaders as i16, 0, &[]);
    assert_eq!(correlation_and_error(conn.read_frame().expect("a reply")), (c, UNSUPPORTED_VERSION));
    // SASL on a PLAINTEXT listener: ILLEGAL_SASL_STATE, as Kafka answers it.
    let c = conn.send_frame(ApiKey::SaslHandshake as i16, 1, &[0, 5, b'P', b'L', b'A', b'I', b'N']);
    assert_eq!(correlation_and_error(conn.read_frame().expect("a reply")), (c, 34));
    api_versions_ok(&mut conn);
}

/// Produce v0-2 are listed (as Kafka 4 lists them) but refused when they
/// come: every partition named gets UNSUPPORTED_VERSION in the request's
/// version format, nothing is stored, and the connection goes on.
#[test]
fn produce_below_v3_gets_unsupported_version_per_partition_and_the_connection_survives() {
    use bytes::{Buf, BufMut};
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    for version in 0..=2i16 {
        let mut body = bytes::BytesMut::new();
        body.put_i16(1); // acks
        body.put_i32(1000);
        body.put_i32(1); // one topic
        body.put_i16(3);
        body.put_slice(b"old");
        body.put_i32(2); // two partitions, each with a 4-byte message set
        for p in 0..2 {
            body.put_i32(p);
            body.put_i32(4);
            body.put_slice(b"\0\0\0\0");
        }
        let c = conn.send_frame(ApiKey::Produce as i16, version, &body);
        let mut frame = conn.read_frame().expect("a reply");
        assert_eq!(frame.get_i32(), c);
        assert_eq!(frame.get_i32(), 1, "v{version}: one topic");
        assert_eq!(frame.get_i16(), 3);
        frame.advance(3);
        assert_eq!(frame.get_i32(), 2, "v{version}: both partitions answered");
        for p in 0..2 {
            assert_eq!(frame.get_i32(), p);
            assert_eq!(frame.get_i16(), UNSUPPORTED_VERSION);
            assert_eq!(frame.get_i64(), -1);
            if version >= 2 {
                assert_eq!(frame.get_i64(), -1);
            }
        }
        assert_eq!(frame.len(), if version >= 1 { 4 } else { 0 }, "v{version}: throttle time only");
    }
    api_versions_ok(&mut conn);
    let (error, records) = polyport_tests::kafka::fetch_raw(&mut conn, "old", 0, 0, 1 << 20);
    assert!(error != 0 || records.is_empty(), "nothing stored");
}

#[test]
fn api_versions_at_an_unknown_version_answers_v0_with_the_list() {
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let c = conn.send_frame(ApiKey::ApiVersions as i16, 77, &[0, 0, 0]);
    let mut frame = conn.read_frame().expect("reply");
    let (correlation, _) = correlation_and_error(frame.clone());
    assert_eq!(correlation, c);
    let _ = bytes::Buf::get_i32(&mut frame);
    let response = ApiVersionsResponse::decode(&mut frame, 0).expect("v0 body");
    assert_eq!(response.error_code, UNSUPPORTED_VERSION);
    assert_eq!(response.api_keys.len(), kafka::apis::SUPPORTED.len());
    api_versions_ok(&mut conn);
}

#[test]
fn oversized_negative_and_malformed_frames_close_only_that_connection() {
    let broker = broker();
    let mut bystander = KafkaConn::connect(broker.kafka_port);
    api_versions_ok(&mut bystander);

    // Over kafkaMaxRequestBytes (64 KiB here).
    let mut conn = KafkaConn::connect(broker.kafka_port);
    conn.send_raw(&(1_000_000i32).to_be_bytes());
    assert!(conn.is_closed_by_broker());

    let mut conn = KafkaConn::connect(broker.kafka_port);
    conn.send_raw(&(-5i32).to_be_bytes());
    assert!(conn.is_closed_by_broker());

    // A Metadata v12 body cut short.
    let mut conn = KafkaConn::connect(broker.kafka_port);
    conn.send_frame(ApiKey::Metadata as i16, 12, &[0x00, 0x00, 0x05]);
    assert!(conn.is_closed_by_broker());

    assert!(broker.wait_for_log("invalid request size 1000000", Duration::from_secs(5)), "{}", broker.log());
    assert!(broker.wait_for_log("malformed request; closing connection", Duration::from_secs(5)), "{}", broker.log());
    api_versions_ok(&mut bystander);
    api_versions_ok(&mut KafkaConn::connect(broker.kafka_port));
}

#[test]
fn fetch_sessions_send_only_partitions_with_news() {
    use kafka_protocol::messages::{
        fetch_request::{FetchPartition, FetchTopic},
        CreateTopicsRequest, FetchRequest, FetchResponse,
    };
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let topic = TopicName(StrBytes::from_static_str("sessions"));
    let create = CreateTopicsRequest::default().with_topics(vec![
        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
            .with_name(topic.clone())
            .with_num_partitions(3)
            .with_replication_factor(1),
    ]);
    let c = conn.send(ApiKey::CreateTopics, 5, &create);
    let _: kafka_protocol::messages::CreateTopicsResponse = conn.receive(ApiKey::CreateTopics, 5, c);
    let partitions: Vec<FetchPartition> = (0..3)
        .map(|p| FetchPartition::default().with_partition(p).with_fetch_offset(0).with_partition_max_bytes(1 << 20))
        .collect();
    let fetch = |session_id: i32, epoch: i32, parts: Vec<FetchPartition>| {
        FetchRequest::default()
            .with_max_wait_ms(50)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_id(session_id)
            .with_session_epoch(epoch)
            .with_topics(if parts.is_empty() {
                vec![]
            } else {
                vec![FetchTopic::default().with_topic(topic.clone()).with_partitions(parts)]
            })
    };
    // A full fetch opening a session answers every partition.
    let c = conn.send(ApiKey::Fetch, 12, &fetch(0, 0, partitions));
    let full: FetchResponse = conn.receive(ApiKey::Fetch, 12, c);
    assert_ne!(full.session_id, 0);
    assert_eq!(full.responses[0].partitions.len(), 3);
    // Nothing changed: an incremental fetch with no partitions answers none.
    let c = conn.send(ApiKey::Fetch, 12, &fetch(full.session_id, 1, vec![]));
    let quiet: FetchResponse = conn.receive(ApiKey::Fetch, 12, c);
    assert_eq!(quiet.error_code, 0);
    assert!(quiet.responses.iter().all(|t| t.partitions.is_empty()), "{quiet:?}");
    // Out of step: INVALID_FETCH_SESSION_EPOCH; unknown id: FETCH_SESSION_ID_NOT_FOUND.
    let c = conn.send(ApiKey::Fetch, 12, &fetch(full.session_id, 7, vec![]));
    let stale: FetchResponse = conn.receive(ApiKey::Fetch, 12, c);
    assert_eq!(stale.error_code, 71);
    let c = conn.send(ApiKey::Fetch, 12, &fetch(full.session_id.wrapping_add(12345), 1, vec![]));
    let unknown: FetchResponse = conn.receive(ApiKey::Fetch, 12, c);
    assert_eq!(unknown.error_code, 70);
}

/// One v2 record batch of `count` records.
fn batch(count: i32) -> bytes::BytesMut {
    let values: Vec<bytes::Bytes> = (0..count).map(|i| bytes::Bytes::from(format!("value {i}"))).collect();
    record_batch(&values, -1, -1, -1, 1_700_000_000_000)
}

/// Produces `records` to partition 0 of `topic`.
fn produce(conn: &mut KafkaConn, topic: &str, acks: i16, records: bytes::Bytes) -> Option<(i16, i64)> {
    polyport_tests::kafka::produce(conn, topic, 0, acks, records)
}

#[test]
fn corrupt_batches_get_corrupt_message_with_nothing_stored_and_a_failed_acks_0_closes_the_connection() {
    const CORRUPT_MESSAGE: i16 = 2;
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let good = batch(3);
    let corrupt = |at: usize, value: u8| {
        let mut b = good.clone();
        b[at] = value;
        b.freeze()
    };
    let last = good.len() - 1;
    // Kafka answers a batch of another magic INVALID_RECORD (not retried).
    let (code, _) = produce(&mut conn, "wire-corrupt", 1, corrupt(16, 1)).expect("answered");
    assert_eq!(code, 87, "magic 1");
    let cases = [
        ("a flipped byte in the last record", corrupt(last, good[last] ^ 0x40)),
        ("a batch length past the end", corrupt(11, good[11].wrapping_add(9))),
        ("a record count changed under the CRC", corrupt(60, good[60] + 1)),
        ("bytes after the batch that are not one", {
            let mut b = good.clone();
            b.extend_from_slice(&[0, 0, 0]);
            b.freeze()
        }),
    ];
    for (what, records) in cases {
        let (code, _) = produce(&mut conn, "wire-corrupt", 1, records).expect("answered");
        assert_eq!(code, CORRUPT_MESSAGE, "{what}");
    }
    // Nothing of the above was stored; acks=0 is stored and not answered:
    // the next answer on the connection is the next request's.
    assert_eq!(produce(&mut conn, "wire-corrupt", 0, good.clone().freeze()), None);
    assert_eq!(produce(&mut conn, "wire-corrupt", -1, good.clone().freeze()), Some((0, 3)));
    api_versions_ok(&mut conn);
    // A failed acks=0 produce has no answer to carry its error: the broker
    // closes the connection (as Kafka does) so the producer looks again.
    assert_eq!(produce(&mut conn, "wire-corrupt", 0, corrupt(16, 1)), None);
    assert!(conn.is_closed_by_broker());
    let mut conn = KafkaConn::connect(broker.kafka_port);
    assert_eq!(produce(&mut conn, "wire-corrupt", -1, good.freeze()), Some((0, 6)), "nothing stored");
}

#[test]
fn with_auto_creation_off_a_produce_to_a_missing_topic_gets_unknown_topic() {
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    let broker = Broker::configure("allowAutoTopicCreation=false", &[&kafka_library()]).start();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let (code, _) = produce(&mut conn, "never-created", -1, batch(1).freeze()).expect("answered");
    assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION);
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str("never-created"))))
        ]))
        .with_allow_auto_topic_creation(true);
    let c = conn.send(ApiKey::Metadata, 12, &metadata);
    let response: MetadataResponse = conn.receive(ApiKey::Metadata, 12, c);
    assert_eq!(response.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION, "the broker's policy wins");
}

#[test]
fn each_listener_advertises_its_own_address() {
    let (internal, external) = (polyport_tests::free_port(), polyport_tests::free_port());
    let conf = format!(
        "kafkaListeners=INTERNAL://127.0.0.1:{internal},EXTERNAL://127.0.0.1:{external}\n\
         kafkaProtocolMap=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT\n\
         kafkaAdvertisedListeners=EXTERNAL://kafka.example.com:19092"
    );
    let broker = Broker::configure(&conf, &[&kafka_library()]).start();
    for (port, host, advertised) in
        [(internal, "127.0.0.1", i32::from(internal)), (external, "kafka.example.com", 19092)]
    {
        let mut conn = KafkaConn::connect(port);
        let c = conn.send(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(Some(vec![])));
        let response: MetadataResponse = conn.receive(ApiKey::Metadata, 12, c);
        let brokers: Vec<(&str, i32)> = response.brokers.iter().map(|b| (b.host.as_str(), b.port)).collect();
        assert_eq!(brokers, [(host, advertised)], "connected on port {port}");
    }
    drop(broker);
}

#[test]
fn a_topic_answers_to_its_short_namespaced_and_full_names_and_is_listed_once() {
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    for (i, name) in ["forms", "public/default/forms", "persistent://public/default/forms"].into_iter().enumerate() {
        assert_eq!(produce(&mut conn, name, -1, batch(1).freeze()), Some((0, i as i64)), "{name}");
    }
    let c = conn.send(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None));
    let all: MetadataResponse = conn.receive(ApiKey::Metadata, 12, c);
    let names: Vec<&str> =
        all.topics.iter().filter_map(|t| t.name.as_ref()).map(|n| n.as_str()).filter(|n| n.contains("forms")).collect();
    assert_eq!(names, ["forms"]);
}

/// Record batches in a fetched partition's records.
fn batches_in(records: &Option<bytes::Bytes>) -> Vec<i64> {
    let mut records = records.clone().unwrap_or_default();
    kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records)
        .expect("valid batches")
        .iter()
        .map(|set| set.records.first().map_or(-1, |r| r.offset))
        .collect()
}

#[test]
fn fetch_honours_its_byte_limits_and_long_polls_until_data_or_max_wait() {
    use kafka_protocol::messages::{
        fetch_request::{FetchPartition, FetchTopic},
        FetchRequest, FetchResponse,
    };
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    for i in 0..3 {
        assert_eq!(produce(&mut conn, "limits", -1, batch(20).freeze()), Some((0, i * 20)));
    }
    let fetch = |offset: i64, max_bytes: i32, partition_max: i32, min_bytes: i32, wait: i32| {
        FetchRequest::default().with_max_wait_ms(wait).with_min_bytes(min_bytes).with_max_bytes(max_bytes).with_topics(
            vec![FetchTopic::default().with_topic(TopicName(StrBytes::from_static_str("limits"))).with_partitions(
                vec![FetchPartition::default().with_fetch_offset(offset).with_partition_max_bytes(partition_max)],
            )],
        )
    };
    let call = |conn: &mut KafkaConn, request: FetchRequest| {
        let c = conn.send(ApiKey::Fetch, 12, &request);
        let response: FetchResponse = conn.receive(ApiKey::Fetch, 12, c);
        let p = &response.responses[0].partitions[0];
        assert_eq!((p.error_code, p.high_watermark), (0, 60));
        batches_in(&p.records)
    };
    assert_eq!(call(&mut conn, fetch(0, 1 << 20, 1 << 20, 1, 0)), [0, 20, 40]);
    assert_eq!(call(&mut conn, fetch(0, 1 << 20, 1, 1, 0)), [0], "the first batch is whole, whatever the limit");
    assert_eq!(call(&mut conn, fetch(25, 1, 1 << 20, 1, 0)), [20], "the response limit too");
    // At the end: waits max_wait for min_bytes, then answers empty.
    let started = std::time::Instant::now();
    assert_eq!(call(&mut conn, fetch(60, 1 << 20, 1 << 20, 1, 600)), Vec::<i64>::new());
    assert!(started.elapsed() >= Duration::from_millis(500), "waited {:?}", started.elapsed());
    // A produce meanwhile ends the wait.
    let port = broker.kafka_port;
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let mut other = KafkaConn::connect(port);
        produce(&mut other, "limits", -1, batch(20).freeze())
    });
    let started = std::time::Instant::now();
    let c = conn.send(ApiKey::Fetch, 12, &fetch(60, 1 << 20, 1 << 20, 1, 10_000));
    let response: FetchResponse = conn.receive(ApiKey::Fetch, 12, c);
    assert!(started.elapsed() < Duration::from_secs(5), "woken by the produce, not max_wait");
    assert_eq!(batches_in(&response.responses[0].partitions[0].records), [60]);
    assert_eq!(producer.join().expect("producer"), Some((0, 60)));
}

#[test]
fn delete_records_inside_a_batch_moves_the_log_start_there() {
    use kafka_protocol::messages::{
        delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic},
        fetch_request::{FetchPartition, FetchTopic},
        DeleteRecordsRequest, DeleteRecordsResponse, FetchRequest, FetchResponse,
    };
    const OFFSET_OUT_OF_RANGE: i16 = 1;
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    assert_eq!(produce(&mut conn, "cut", -1, batch(10).freeze()), Some((0, 0)));
    let request =
        DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("cut")))
            .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(5)])]);
    let c = conn.send(ApiKey::DeleteRecords, 2, &request);
    let response: DeleteRecordsResponse = conn.receive(ApiKey::DeleteRecords, 2, c);
    let p = &response.topics[0].partitions[0];
    assert_eq!((p.error_code, p.low_watermark), (0, 5));
    let fetch = |offset: i64| {
        FetchRequest::default().with_max_wait_ms(0).with_min_bytes(1).with_max_bytes(1 << 20).with_topics(vec![
            FetchTopic::default().with_topic(TopicName(StrBytes::from_static_str("cut"))).with_partitions(vec![
                FetchPartition::default().with_fetch_offset(offset).with_partition_max_bytes(1 << 20),
            ]),
        ])
    };
    let c = conn.send(ApiKey::Fetch, 12, &fetch(5));
    let response: FetchResponse = conn.receive(ApiKey::Fetch, 12, c);
    let p = &response.responses[0].partitions[0];
    assert_eq!((p.error_code, p.log_start_offset), (0, 5));
    assert_eq!(batches_in(&p.records), [0], "the batch holding offset 5; the client skips 0-4");
    let c = conn.send(ApiKey::Fetch, 12, &fetch(4));
    let response: FetchResponse = conn.receive(ApiKey::Fetch, 12, c);
    assert_eq!(response.responses[0].partitions[0].error_code, OFFSET_OUT_OF_RANGE, "below the log start");
}

#[test]
fn max_timestamp_is_found_past_many_later_batches() {
    use kafka_protocol::messages::{
        list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
        ListOffsetsRequest, ListOffsetsResponse,
    };
    let broker = broker();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let list = |conn: &mut KafkaConn, topic: &str, timestamp: i64| {
        let request =
            ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(timestamp)])]);
        let c = conn.send(ApiKey::ListOffsets, 7, &request);
        let response: ListOffsetsResponse = conn.receive(ApiKey::ListOffsets, 7, c);
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    let base = 1_700_000_000_000;
    let one = |ts: i64| record_batch(&[bytes::Bytes::from_static(b"v")], -1, -1, -1, ts).freeze();
    // Twelve batches with growing timestamps, then an older one: the search
    // climbs from the last batch's timestamp, then bisects.
    for i in 0..12 {
        assert_eq!(produce(&mut conn, "max-ts", -1, one(base + i * 1000)), Some((0, i)));
    }
    assert_eq!(produce(&mut conn, "max-ts", -1, one(base)), Some((0, 12)));
    assert_eq!(list(&mut conn, "max-ts", -3), (0, 11, base + 11_000));
    assert_eq!(list(&mut conn, "empty-ts", -3).1, -1, "an empty partition has none");
}
