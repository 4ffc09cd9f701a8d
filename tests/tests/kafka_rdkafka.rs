//! The `rdkafka` crate (librdkafka 2.12, built from source) as a Rust Kafka
//! client against the real broker: admin, produce with keys, headers and
//! timestamps, consume by assignment, offsets by time.

use std::time::Duration;

use polyport_tests::{kafka_library, Broker};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    message::{Header, Headers, Message, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Offset, Timestamp, TopicPartitionList,
};

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("message.timeout.ms", "20000");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_produces_and_consumes_every_field() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let bootstrap = format!("127.0.0.1:{}", broker.kafka_port);

    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().expect("admin");
    let created = admin
        .create_topics(&[NewTopic::new("rust", 3, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("create_topics");
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");

    let producer: FutureProducer = config(&bootstrap).set("linger.ms", "5").create().expect("producer");
    let base = 1_700_000_000_000i64;
    for i in 0..30i64 {
        let key = format!("k{i}");
        let payload = format!("v{i}");
        let headers = OwnedHeaders::new().insert(Header { key: "n", value: Some(&i.to_string()) });
        let record = FutureRecord::to("rust")
            .partition((i % 3) as i32)
            .key(&key)
            .payload(&payload)
            .headers(headers)
            .timestamp(base + i * 1000);
        producer.send(record, Duration::from_secs(20)).await.map_err(|(e, _)| e).expect("delivered");
    }
    // A tombstone: no payload.
    producer
        .send(FutureRecord::<str, str>::to("rust").partition(0).key("gone"), Duration::from_secs(20))
        .await
        .map_err(|(e, _)| e)
        .expect("delivered");

    let consumer: BaseConsumer =
        config(&bootstrap).set("group.id", "unused").set("enable.auto.commit", "false").create().expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..3 {
        assignment.add_partition_offset("rust", p, Offset::Beginning).expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 31 && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let m = message.expect("no error");
            let header = m.headers().map(|h| h.get(0)).map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)));
            seen.push((
                m.partition(),
                m.offset(),
                m.key().map(<[u8]>::to_vec),
                m.payload().map(<[u8]>::to_vec),
                m.timestamp(),
                header,
            ));
        }
    }
    assert_eq!(seen.len(), 31);
    let k7 = seen.iter().find(|s| s.2.as_deref() == Some(b"k7".as_slice())).expect("k7");
    assert_eq!(k7.0, 1);
    assert_eq!(k7.1, 2, "k1, k4, k7 on partition 1: k7 is its offset 2");
    assert_eq!(k7.3.as_deref(), Some(b"v7".as_slice()));
    assert_eq!(k7.4, Timestamp::CreateTime(base + 7000));
    assert_eq!(k7.5, Some(("n".to_owned(), Some(b"7".to_vec()))));
    let gone = seen.iter().find(|s| s.2.as_deref() == Some(b"gone".as_slice())).expect("tombstone");
    assert_eq!(gone.3, None);

    // Offsets by time: partition 2 holds k2, k5, k8, ...; base+5500 → k8, offset 2.
    let mut query = TopicPartitionList::new();
    query.add_partition_offset("rust", 2, Offset::Offset(base + 5500)).expect("query");
    let found = consumer.offsets_for_times(query, Duration::from_secs(10)).expect("offsets_for_times");
    assert_eq!(found.find_partition("rust", 2).expect("partition").offset(), Offset::Offset(2));
    let (low, high) = consumer.fetch_watermarks("rust", 0, Duration::from_secs(10)).expect("watermarks");
    assert_eq!((low, high), (0, 11));
}
