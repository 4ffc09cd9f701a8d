//! Pulsar's semantics on the real broker, with raw frames (what a client
//! sends and what it gets back, field by field) and with pulsar-rs: the
//! `ack_set` of a redelivered batch, fields that are refused by name,
//! listeners, non-persistent topics, access modes, delayed delivery.

use std::time::{Duration, Instant, SystemTime};

use futures::TryStreamExt;
use polyport_tests::{
    kafka_library,
    pulsar::{batch_member, message_frame, metadata, send_command, RawPulsar},
    Broker,
};
use pulsar::{
    message::proto::{
        base_command::Type, command_ack::AckType, command_lookup_topic_response::LookupType,
        command_partitioned_topic_metadata_response::LookupType as MetadataLookupType, command_subscribe::SubType,
        BaseCommand, CommandAck, CommandCloseConsumer, CommandFlow, CommandLookupTopic,
        CommandPartitionedTopicMetadata, CommandSubscribe, MessageIdData, MessageMetadata, ServerError,
    },
    producer::ProducerOptions,
    Consumer, ConsumerOptions, Pulsar, TokioExecutor,
};

fn subscribe(raw: &mut RawPulsar, topic: &str, consumer_id: u64, request_id: u64) {
    raw.send(&BaseCommand {
        r#type: Type::Subscribe as i32,
        subscribe: Some(CommandSubscribe {
            topic: topic.into(),
            subscription: "s".into(),
            sub_type: SubType::Shared as i32,
            consumer_id,
            request_id,
            initial_position: Some(1), // Earliest
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(raw.receive().expect("SUCCESS").r#type, Type::Success as i32);
    raw.send(&BaseCommand {
        r#type: Type::Flow as i32,
        flow: Some(CommandFlow { consumer_id, message_permits: 100 }),
        ..Default::default()
    });
}

/// A consumer acknowledges members 0 and 1 of a batch of five and leaves;
/// the batch redelivered to the next consumer says which members are still
/// unacknowledged, so the client hands the application only those.
#[test]
fn a_partly_acknowledged_batch_is_redelivered_with_its_ack_set() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let topic = "persistent://public/default/ack-set";
    let mut raw = RawPulsar::connected(broker.pulsar_port);
    assert_eq!(raw.producer(topic, 1).r#type, Type::ProducerSuccess as i32);
    let five: Vec<u8> = (0..5).flat_map(|i| batch_member(format!("m{i}").as_bytes())).collect();
    raw.write(&message_frame(&send_command(1, 0, 5), &metadata(Some(5)), &five, false));
    assert_eq!(raw.receive().expect("receipt").r#type, Type::SendReceipt as i32);

    subscribe(&mut raw, topic, 10, 100);
    let first = raw.receive().expect("MESSAGE").message.expect("message");
    assert!(first.ack_set.is_empty(), "nothing acknowledged yet: {:?}", first.ack_set);
    // Batch-index acknowledgement of 0 and 1: the set bits are the members
    // still unacknowledged (a Java BitSet), as Pulsar clients send it.
    let id = MessageIdData { ack_set: vec![0b11100], batch_size: Some(5), ..first.message_id.clone() };
    raw.send(&BaseCommand {
        r#type: Type::Ack as i32,
        ack: Some(CommandAck {
            consumer_id: 10,
            ack_type: AckType::Individual as i32,
            message_id: vec![id],
            request_id: Some(101),
            ..Default::default()
        }),
        ..Default::default()
    });
    let ack = raw.receive().expect("ACK_RESPONSE").ack_response.expect("ack response");
    assert_eq!(ack.error, None, "{:?}", ack.message);
    raw.send(&BaseCommand {
        r#type: Type::CloseConsumer as i32,
        close_consumer: Some(CommandCloseConsumer { consumer_id: 10, request_id: 102 }),
        ..Default::default()
    });
    assert_eq!(raw.receive().expect("SUCCESS").r#type, Type::Success as i32);

    subscribe(&mut raw, topic, 11, 103);
    let again = raw.receive().expect("MESSAGE").message.expect("message");
    assert_eq!(
        (again.message_id.ledger_id, again.message_id.entry_id),
        (first.message_id.ledger_id, first.message_id.entry_id)
    );
    assert_eq!(again.ack_set, vec![0b11100], "members 2, 3 and 4 are unacknowledged");
}

/// Fields that would change what delivery means are refused by name, with
/// the error code on which the client fails that message alone: Pulsar's
/// NotAllowedError, or ChecksumError for the C++ client (which would
/// reconnect and resend on any other); the producer goes on.
#[test]
fn send_fields_the_broker_does_not_serve_are_refused_by_name() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let mut cpp = RawPulsar::connected_as(broker.pulsar_port, "Pulsar-CPP-v4.2.0");
    assert_eq!(cpp.producer("persistent://public/default/fields", 1).r#type, Type::ProducerSuccess as i32);
    let txn = MessageMetadata { txnid_least_bits: Some(1), txnid_most_bits: Some(2), ..metadata(None) };
    cpp.write(&message_frame(&send_command(1, 0, 1), &txn, b"x", false));
    let error = cpp.receive().expect("an answer").send_error.expect("SEND_ERROR");
    assert_eq!(error.error, ServerError::ChecksumError as i32, "{}", error.message);
    let mut raw = RawPulsar::connected(broker.pulsar_port);
    assert_eq!(raw.producer("persistent://public/default/fields", 1).r#type, Type::ProducerSuccess as i32);
    let cases = [
        (MessageMetadata { txnid_least_bits: Some(1), txnid_most_bits: Some(2), ..metadata(None) }, "txnid"),
        (MessageMetadata { replicate_to: vec!["east".into()], ..metadata(None) }, "replicate_to (east)"),
        (MessageMetadata { schema_version: Some(vec![0, 1]), ..metadata(None) }, "schema_version"),
        (MessageMetadata { marker_type: Some(1), ..metadata(None) }, "marker_type"),
    ];
    for (sequence, (m, says)) in cases.into_iter().enumerate() {
        raw.write(&message_frame(&send_command(1, sequence as u64, 1), &m, b"x", false));
        let error = raw.receive().expect("an answer").send_error.expect("SEND_ERROR");
        assert_eq!(error.error, ServerError::NotAllowedError as i32, "{}", error.message);
        assert!(error.message.contains(says), "{says}: {}", error.message);
    }
    raw.write(&message_frame(&send_command(1, 9, 1), &metadata(None), b"fine", false));
    assert_eq!(raw.receive().expect("an answer").r#type, Type::SendReceipt as i32);
    // A producer that asks for transactions is refused at once.
    raw.send(&BaseCommand {
        r#type: Type::Producer as i32,
        producer: Some(pulsar::message::proto::CommandProducer {
            topic: "persistent://public/default/fields".into(),
            producer_id: 2,
            request_id: 2,
            txn_enabled: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    });
    let error = raw.receive().expect("an answer").error.expect("ERROR");
    assert_eq!(error.error, ServerError::NotAllowedError as i32);
    assert!(error.message.contains("transactions"), "{}", error.message);
}

/// Lookups answer the named listener's URLs, refuse an unknown name with an
/// error naming it, and refuse non-persistent topics at once.
#[test]
fn lookups_follow_listeners_and_refuse_what_is_not_served() {
    let broker = Broker::configure(
        "advertisedListeners=internal:pulsar://10.1.2.3:6650,external:pulsar://broker.example.com:16650,external:pulsar+ssl://broker.example.com:16651",
        &[&kafka_library()],
    )
    .start();
    let mut raw = RawPulsar::connected(broker.pulsar_port);
    let lookup = |raw: &mut RawPulsar, topic: &str, listener: Option<&str>, request_id: u64| {
        raw.send(&BaseCommand {
            r#type: Type::Lookup as i32,
            lookup_topic: Some(CommandLookupTopic {
                topic: topic.into(),
                request_id,
                advertised_listener_name: listener.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        });
        raw.receive().expect("LOOKUP_RESPONSE").lookup_topic_response.expect("lookup response")
    };
    let t = "persistent://public/default/where";
    let internal = lookup(&mut raw, t, Some(""), 1);
    assert_eq!(internal.broker_service_url.as_deref(), Some("pulsar://10.1.2.3:6650"), "unnamed: the internal one");
    let external = lookup(&mut raw, t, Some("external"), 2);
    assert_eq!(external.response, Some(LookupType::Connect as i32));
    assert_eq!(external.broker_service_url.as_deref(), Some("pulsar://broker.example.com:16650"));
    assert_eq!(external.broker_service_url_tls.as_deref(), Some("pulsar+ssl://broker.example.com:16651"));
    let unknown = lookup(&mut raw, t, Some("dmz"), 3);
    assert_eq!(unknown.response, Some(LookupType::Failed as i32));
    assert_eq!(unknown.error, Some(ServerError::NotAllowedError as i32));
    let message = unknown.message.unwrap_or_default();
    assert!(message.contains("listener dmz is not configured") && message.contains("internal, external"), "{message}");

    let np = "non-persistent://public/default/np";
    let refused = lookup(&mut raw, np, None, 4);
    assert_eq!(refused.error, Some(ServerError::NotAllowedError as i32));
    assert!(refused.message.unwrap_or_default().contains("non-persistent topics are not served"));
    raw.send(&BaseCommand {
        r#type: Type::PartitionedMetadata as i32,
        partition_metadata: Some(CommandPartitionedTopicMetadata {
            topic: np.into(),
            request_id: 5,
            ..Default::default()
        }),
        ..Default::default()
    });
    let metadata = raw.receive().expect("answer").partition_metadata_response.expect("metadata response");
    assert_eq!(metadata.response, Some(MetadataLookupType::Failed as i32));
    assert_eq!(metadata.error, Some(ServerError::NotAllowedError as i32));
    let error = raw.producer(np, 7).error.expect("ERROR");
    assert_eq!(error.error, ServerError::NotAllowedError as i32);
}

/// pulsar-rs: a second Exclusive producer is refused as Pulsar refuses it
/// (ProducerFenced), a Shared one beside it too (ProducerBusy is retried by
/// pulsar-rs, so only the first is asserted here); after the exclusive
/// producer leaves, another is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulsar_rs_exclusive_producers_exclude_each_other() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let url = format!("pulsar://127.0.0.1:{}", broker.pulsar_port);
    let pulsar: Pulsar<_> = Pulsar::builder(url, TokioExecutor).build().await.expect("connects");
    let topic = "persistent://public/default/exclusive-rs";
    let exclusive = ProducerOptions { access_mode: Some(1), ..Default::default() };
    let mut first =
        pulsar.producer().with_topic(topic).with_options(exclusive.clone()).build().await.expect("first exclusive");
    first.send_non_blocking(b"one".to_vec()).await.expect("send").await.expect("receipt");
    let second = pulsar.producer().with_topic(topic).with_options(exclusive.clone()).build().await;
    let error = second.err().expect("a second exclusive producer is refused").to_string();
    assert!(error.contains("ProducerFenced") || error.contains("Exclusive producer cannot attach"), "{error}");
    first.close().await.expect("close");
    let mut third = pulsar.producer().with_topic(topic).with_options(exclusive).build().await.expect("admitted");
    third.send_non_blocking(b"two".to_vec()).await.expect("send").await.expect("receipt");
}

/// pulsar-rs: a message delivered at a time 2 s ahead reaches a Shared
/// subscription no earlier, while the one sent after it comes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulsar_rs_delayed_message_waits_for_its_time() {
    let broker = Broker::configure("delayedDeliveryTickTimeMillis=100", &[&kafka_library()]).start();
    let url = format!("pulsar://127.0.0.1:{}", broker.pulsar_port);
    let pulsar: Pulsar<_> = Pulsar::builder(url, TokioExecutor).build().await.expect("connects");
    let topic = "persistent://public/default/delayed-rs";
    let mut consumer: Consumer<Vec<u8>, _> = pulsar
        .consumer()
        .with_topic(topic)
        .with_subscription("work")
        .with_subscription_type(pulsar::SubType::Shared)
        .with_options(ConsumerOptions::default())
        .build()
        .await
        .expect("consumer");
    let mut producer = pulsar.producer().with_topic(topic).build().await.expect("producer");
    let sent = Instant::now();
    let due = SystemTime::now() + Duration::from_secs(2);
    let later = producer.create_message().with_content(b"later".to_vec()).deliver_at(due).expect("time");
    later.send_non_blocking().await.expect("send").await.expect("receipt");
    producer.send_non_blocking(b"now".to_vec()).await.expect("send").await.expect("receipt");
    let first = consumer.try_next().await.expect("receive").expect("a message");
    assert_eq!(first.payload.data, b"now");
    assert!(sent.elapsed() < Duration::from_secs(2));
    consumer.ack(&first).await.expect("ack");
    let second = consumer.try_next().await.expect("receive").expect("a message");
    assert_eq!(second.payload.data, b"later");
    assert!(SystemTime::now() >= due, "delivered before its time");
    assert!(sent.elapsed() < Duration::from_secs(3), "{:?}", sent.elapsed());
}
