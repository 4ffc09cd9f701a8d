//! A connection's pipelined Produce requests are stored in the order they
//! were sent, whatever the storage is doing when they arrive (issue 12).
//!
//! The broker of these tests is built with fault injection: `topics::open`
//! makes the first open of a partition wait, as a busy metadata store or
//! disk would. Before the connection's appends were sequenced, the requests
//! behind the first one found the partition open first and were stored
//! ahead of it.

use bytes::Bytes;
use kafka_protocol::messages::{
    produce_request::{PartitionProduceData, TopicProduceData},
    ApiKey, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use polyport_tests::{
    kafka::{record_batch, KafkaConn},
    kafka_library, Broker,
};

const REQUESTS: usize = 8;

fn produce_request(topic: &str, value: usize) -> ProduceRequest {
    let batch = record_batch(&[Bytes::from(value.to_string())], -1, -1, -1, 1_700_000_000_000);
    ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
        .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch.freeze()))])])
}

/// Sends every request before reading any answer; returns each request's base offset.
fn pipeline(conn: &mut KafkaConn, topic: &str) -> Vec<i64> {
    let sent: Vec<i32> = (0..REQUESTS).map(|v| conn.send(ApiKey::Produce, 9, &produce_request(topic, v))).collect();
    sent.into_iter()
        .map(|c| {
            let response: ProduceResponse = conn.receive(ApiKey::Produce, 9, c);
            let p = &response.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "{topic}: request {c} refused");
            p.base_offset
        })
        .collect()
}

#[test]
fn pipelined_produces_to_a_partition_still_opening_keep_their_order() {
    let broker = Broker::configure("", &[&kafka_library()]).env("FAILPOINTS", "topics::open=1*return(500)").start();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let expected: Vec<i64> = (0..REQUESTS as i64).collect();
    // The first request auto-creates the topic and waits 500 ms for its ledger.
    assert_eq!(pipeline(&mut conn, "slow-open"), expected, "offsets in request order");
    // Once open, the same holds (no fault left).
    let later: Vec<i64> = (REQUESTS as i64..2 * REQUESTS as i64).collect();
    assert_eq!(pipeline(&mut conn, "slow-open"), later);
}

/// Many requests in flight at once (librdkafka's test 0041 pipelines a
/// thousand 500 KB messages): the connection task serves dozens of them in
/// one poll, past tokio's cooperative budget, and every append must still
/// take its place at its first poll.
#[test]
fn hundreds_of_pipelined_produces_keep_their_order() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    conn.set_timeout(std::time::Duration::from_secs(30));
    let value = Bytes::from(vec![b'x'; 64 * 1024]);
    let request = |n: usize| {
        let mut v = value.to_vec();
        v[..8].copy_from_slice(&(n as u64).to_be_bytes());
        let batch = record_batch(&[Bytes::from(v)], -1, -1, -1, 1_700_000_000_000);
        ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName(StrBytes::from_static_str("many"))).with_partition_data(
                vec![PartitionProduceData::default().with_index(0).with_records(Some(batch.freeze()))],
            ),
        ])
    };
    // The topic exists first, so only the pipeline is under test.
    let c = conn.send(ApiKey::Produce, 9, &request(0));
    let _: ProduceResponse = conn.receive(ApiKey::Produce, 9, c);
    let sent: Vec<i32> = (1..=400).map(|n| conn.send(ApiKey::Produce, 9, &request(n))).collect();
    let offsets: Vec<i64> = sent
        .into_iter()
        .map(|c| {
            let response: ProduceResponse = conn.receive(ApiKey::Produce, 9, c);
            let p = &response.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0);
            p.base_offset
        })
        .collect();
    let expected: Vec<i64> = (1..=400).collect();
    assert_eq!(offsets, expected, "each request at its own offset, in request order");
}
