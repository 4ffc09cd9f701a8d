//! Reads from the disk never hold up the runtime (issue 12): a catch-up
//! Fetch whose data is no longer in the tail cache reads on a blocking
//! thread, so the broker answers everyone else meanwhile. The tests' broker
//! makes each disk read take 2 s (`ledger::disk_read`); before reads left
//! the runtime's workers, two such Fetches stalled every connection of a
//! 2-core machine.

use std::{
    thread,
    time::{Duration, Instant},
};

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ListOffsetsRequest, ListOffsetsResponse,
};
use polyport_tests::{
    kafka::{fetch_raw, produce, record_batch, KafkaConn},
    kafka_library, Broker,
};

const TOPICS: [&str; 3] = ["cold-a", "cold-b", "cold-c"];

fn list_latest(conn: &mut KafkaConn, topic: &str) -> ListOffsetsResponse {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let request =
        ListOffsetsRequest::default().with_replica_id(kafka_protocol::messages::BrokerId(-1)).with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(
                    topic.to_owned(),
                )))
                .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)]),
        ]);
    let c = conn.send(ApiKey::ListOffsets, 7, &request);
    conn.receive(ApiKey::ListOffsets, 7, c)
}

#[test]
fn a_fetch_from_the_disk_does_not_stall_other_connections() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    for topic in TOPICS {
        let batch = record_batch(&[Bytes::from_static(b"cold")], -1, -1, -1, 1_700_000_000_000);
        assert_eq!(produce(&mut conn, topic, 0, -1, batch.freeze()), Some((0, 0)));
    }
    drop(conn);
    let mut broker = broker;
    broker.kill(libc::SIGTERM);
    // A restart empties the tail cache: every read now comes from the disk.
    let broker = broker.env("FAILPOINTS", "ledger::disk_read=sleep(2000)").restart();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    conn.set_timeout(Duration::from_secs(30));
    // Open each partition first (recovery reads the disk too, on its own thread).
    for topic in TOPICS {
        assert_eq!(list_latest(&mut conn, topic).topics[0].partitions[0].offset, 1);
    }
    let port = broker.kafka_port;
    let fetches: Vec<_> = TOPICS
        .iter()
        .map(|topic| {
            thread::spawn(move || {
                let mut conn = KafkaConn::connect(port);
                conn.set_timeout(Duration::from_secs(30));
                let (error, records) = fetch_raw(&mut conn, topic, 0, 0, 1 << 20);
                assert_eq!(error, 0);
                assert!(!records.is_empty(), "{topic}: the record is read");
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let c = conn.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let answer: ApiVersionsResponse = conn.receive(ApiKey::ApiVersions, 3, c);
    let waited = started.elapsed();
    assert_eq!(answer.error_code, 0);
    assert!(waited < Duration::from_millis(1000), "ApiVersions waited {waited:?} behind disk reads");
    for fetch in fetches {
        fetch.join().expect("fetch");
    }
}
