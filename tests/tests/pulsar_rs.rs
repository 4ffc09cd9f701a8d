//! The Pulsar protocol with pulsar-rs (protocol version 12): produce with
//! keys, properties and event times, consume and acknowledge; the
//! subscription is a ledger cursor listed beside a Kafka group's.

use futures::TryStreamExt;
use kafka_protocol::{
    messages::{
        offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
        ApiKey, GroupId, OffsetCommitRequest, OffsetCommitResponse, TopicName,
    },
    protocol::StrBytes,
};
use polyport_tests::{
    free_port,
    kafka::KafkaConn,
    kafka_library,
    line::{line_handler, Line},
    pulsar::{message_frame, send_command, RawPulsar},
    Broker,
};
use pulsar::{consumer::InitialPosition, Consumer, ConsumerOptions, Pulsar, SubType, TokioExecutor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulsar_rs_round_trip_and_both_protocols_show_as_cursors() {
    let port = free_port();
    let broker = Broker::configure(
        &format!("messagingProtocols=kafka,line\nlineListener=127.0.0.1:{port}"),
        &[&kafka_library(), line_handler()],
    )
    .start();
    let url = format!("pulsar://127.0.0.1:{}", broker.pulsar_port);
    let pulsar: Pulsar<_> = Pulsar::builder(url, TokioExecutor).build().await.expect("connects");
    let topic = "persistent://public/default/shared-rs";
    let mut producer = pulsar.producer().with_topic(topic).with_name("rs-producer").build().await.expect("producer");
    for i in 0..10 {
        producer
            .create_message()
            .with_content(format!("m{i}").into_bytes())
            .with_partition_key(format!("key-{i}"))
            .with_property("i", i.to_string())
            .event_time(1_000 + i)
            .send_non_blocking()
            .await
            .expect("send")
            .await
            .expect("receipt");
    }
    let mut consumer: Consumer<Vec<u8>, _> = pulsar
        .consumer()
        .with_topic(topic)
        .with_subscription("rs-sub")
        .with_subscription_type(SubType::Exclusive)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build()
        .await
        .expect("consumer");
    for i in 0..6u64 {
        let message = consumer.try_next().await.expect("receive").expect("a message");
        assert_eq!(message.payload.data, format!("m{i}").into_bytes());
        assert_eq!(message.payload.metadata.partition_key.as_deref(), Some(format!("key-{i}").as_str()));
        assert_eq!(message.payload.metadata.event_time, Some(1_000 + i));
        assert_eq!(message.payload.metadata.properties[0].value, i.to_string());
        consumer.ack(&message).await.expect("ack");
    }

    // A Kafka group commits on the same topic.
    let mut kafka = KafkaConn::connect(broker.kafka_port);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("kafka-group")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("shared-rs")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(3)])]);
    let c = kafka.send(ApiKey::OffsetCommit, 8, &commit);
    let response: OffsetCommitResponse = kafka.receive(ApiKey::OffsetCommit, 8, c);
    assert_eq!(response.topics[0].partitions[0].error_code, 0);

    // Both are cursors of the ledger: name, mark-delete, backlog.
    let mut line = Line::connect(port);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let cursors = line.call("CURSORS shared-rs");
        if cursors == "kafka-group:3:7 rs-sub:6:4" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "cursors: {cursors}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[test]
fn unsupported_commands_get_errors_and_bad_frames_close_only_their_connection() {
    use pulsar::message::proto::{
        base_command::Type, BaseCommand, CommandConnect, CommandConsumerStats, CommandGetSchema, ServerError,
    };
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let mut raw = RawPulsar::connect(broker.pulsar_port);
    raw.send(&BaseCommand {
        r#type: Type::Connect as i32,
        connect: Some(CommandConnect {
            client_version: "raw".into(),
            protocol_version: Some(21),
            ..Default::default()
        }),
        ..Default::default()
    });
    let connected = raw.receive().expect("CONNECTED");
    assert_eq!(connected.connected.expect("connected").protocol_version, Some(19), "the broker's version");
    raw.send(&BaseCommand {
        r#type: Type::ConsumerStats as i32,
        consumer_stats: Some(CommandConsumerStats { request_id: 77, consumer_id: 1 }),
        ..Default::default()
    });
    let error = raw.receive().expect("an answer").error.expect("ERROR");
    assert_eq!((error.request_id, error.error), (77, ServerError::NotAllowedError as i32));
    assert!(error.message.contains("ConsumerStats"), "{}", error.message);
    // A schema lookup is answered in its own response type (a generic ERROR
    // leaves the C++ client waiting for its operation timeout).
    raw.send(&BaseCommand {
        r#type: Type::GetSchema as i32,
        get_schema: Some(CommandGetSchema { request_id: 78, topic: "t".into(), ..Default::default() }),
        ..Default::default()
    });
    let schema = raw.receive().expect("an answer").get_schema_response.expect("GET_SCHEMA_RESPONSE");
    assert_eq!((schema.request_id, schema.error_code), (78, Some(ServerError::TopicNotFound as i32)));
    assert!(schema.error_message.unwrap_or_default().contains("no schema registry"));

    // A frame larger than maxMessageSize + 10 KiB closes this connection...
    let mut big = RawPulsar::connect(broker.pulsar_port);
    std::io::Write::write_all(&mut big.0, &u32::MAX.to_be_bytes()).expect("write");
    assert!(big.receive().is_none(), "closed");
    // ...and nobody else's.
    raw.send(&BaseCommand { r#type: Type::Ping as i32, ping: Some(Default::default()), ..Default::default() });
    assert_eq!(raw.receive().expect("PONG").r#type, Type::Pong as i32);
    assert!(broker.log().contains("frame of 4294967295 bytes: the limit is"), "{}", broker.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulsar_rs_shared_consumers_partitioned_topics_readers_and_negative_acks() {
    let broker =
        Broker::configure("allowAutoTopicCreationType=partitioned\ndefaultNumPartitions=3", &[&kafka_library()])
            .start();
    let url = format!("pulsar://127.0.0.1:{}", broker.pulsar_port);
    let pulsar: Pulsar<_> = Pulsar::builder(url, TokioExecutor).build().await.expect("connects");
    // Auto-created with 3 partitions: the client produces to and consumes from all of them.
    let topic = "persistent://public/default/parted-rs";
    let mut producer = pulsar.producer().with_topic(topic).build_multi_topic();
    for i in 0..30 {
        producer.send_non_blocking(topic, format!("s{i}").into_bytes()).await.expect("send").await.expect("receipt");
    }
    let options = || ConsumerOptions::default().with_initial_position(InitialPosition::Earliest);
    let mut a: Consumer<Vec<u8>, _> = pulsar
        .consumer()
        .with_topic(topic)
        .with_subscription("work")
        .with_subscription_type(SubType::Shared)
        .with_options(options())
        .build()
        .await
        .expect("a");
    let mut b: Consumer<Vec<u8>, _> = pulsar
        .consumer()
        .with_topic(topic)
        .with_subscription("work")
        .with_subscription_type(SubType::Shared)
        .with_options(options())
        .build()
        .await
        .expect("b");
    let mut seen = std::collections::BTreeSet::new();
    let mut nacked = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while seen.len() < 30 {
        assert!(std::time::Instant::now() < deadline, "only {} of 30: {seen:?}", seen.len());
        for c in [&mut a, &mut b] {
            let next = tokio::time::timeout(std::time::Duration::from_millis(200), c.try_next()).await;
            let Ok(Ok(Some(message))) = next else { continue };
            let value = String::from_utf8(message.payload.data.clone()).expect("utf-8");
            if !nacked {
                // The first message is refused once and must come back.
                nacked = true;
                c.nack(&message).await.expect("nack");
                continue;
            }
            c.ack(&message).await.expect("ack");
            assert!(seen.insert(value.clone()), "{value} delivered twice");
        }
    }
    assert_eq!(seen.len(), 30);

    // A reader from the earliest message of one partition.
    let mut reader = pulsar
        .reader()
        .with_topic(format!("{topic}-partition-0"))
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .into_reader::<Vec<u8>>()
        .await
        .expect("reader");
    let first = reader.try_next().await.expect("read").expect("a message");
    assert!(String::from_utf8(first.payload.data).expect("utf-8").starts_with('s'));
}

#[test]
fn a_pulsar_null_value_is_a_kafka_tombstone_and_a_bad_checksum_closes_the_connection() {
    use kafka_protocol::{
        messages::{
            fetch_request::{FetchPartition, FetchTopic},
            FetchRequest, FetchResponse,
        },
        records::RecordBatchDecoder,
    };
    use pulsar::message::proto::{base_command::Type, MessageMetadata};
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let mut raw = RawPulsar::connected(broker.pulsar_port);
    let answer = raw.producer("persistent://public/default/tombstones", 1);
    assert_eq!(answer.r#type, Type::ProducerSuccess as i32);
    let send = |sequence_id| send_command(1, sequence_id, 1);
    let metadata = |null: bool| MessageMetadata {
        producer_name: "raw".into(),
        sequence_id: 0,
        publish_time: 1_700_000_000_000,
        partition_key: Some("deleted-key".into()),
        null_value: null.then_some(true),
        ..Default::default()
    };
    let write = |raw: &mut RawPulsar, frame: Vec<u8>| raw.write(&frame);
    write(&mut raw, message_frame(&send(0), &metadata(true), b"", false));
    assert_eq!(raw.receive().expect("SEND_RECEIPT").r#type, Type::SendReceipt as i32);
    write(&mut raw, message_frame(&send(1), &metadata(false), b"live", false));
    assert_eq!(raw.receive().expect("SEND_RECEIPT").r#type, Type::SendReceipt as i32);

    let mut kafka = KafkaConn::connect(broker.kafka_port);
    let request =
        FetchRequest::default().with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("tombstones")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let c = kafka.send(ApiKey::Fetch, 12, &request);
    let response: FetchResponse = kafka.receive(ApiKey::Fetch, 12, c);
    let mut records = response.responses[0].partitions[0].records.clone().expect("records");
    let records: Vec<_> =
        RecordBatchDecoder::decode_all(&mut records).expect("batches").into_iter().flat_map(|s| s.records).collect();
    type Row<'a> = (i64, Option<&'a [u8]>, Option<&'a [u8]>);
    let got: Vec<Row> = records.iter().map(|r| (r.offset, r.key.as_deref(), r.value.as_deref())).collect();
    assert_eq!(got, [(0, Some(&b"deleted-key"[..]), None), (1, Some(&b"deleted-key"[..]), Some(&b"live"[..]))]);

    // A damaged checksum closes this connection (and nothing is stored).
    let bad = message_frame(&send(2), &metadata(false), b"x", true);
    write(&mut raw, bad);
    assert!(raw.receive().is_none(), "closed");
    assert!(broker.log().contains("checksum mismatch"), "{}", broker.log());
}
