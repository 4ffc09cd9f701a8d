//! Idempotent producers on the real binary, through the raw wire protocol: a
//! retried batch is answered with its first offset and not stored twice; a
//! batch ahead of its producer's sequence gets a retriable error; an old
//! epoch is fenced; and all of it holds across a restart (kill -9).

use bytes::{Bytes, BytesMut};
use kafka_protocol::{
    indexmap::IndexMap,
    messages::{
        produce_request::{PartitionProduceData, TopicProduceData},
        ApiKey, ProduceRequest, ProduceResponse, TopicName,
    },
    protocol::StrBytes,
    records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType},
};
use polyport_tests::{kafka::KafkaConn, kafka_library, Broker};

const NOT_ENOUGH_REPLICAS: i16 = 19;
const INVALID_PRODUCER_EPOCH: i16 = 47;

/// Produces `count` records as producer `pid`/`epoch` from sequence `seq`
/// (`pid` -1: not idempotent); returns (error code, base offset).
fn produce(kafka: &mut KafkaConn, pid: i64, epoch: i16, seq: i32, count: i32) -> (i16, i64) {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: if pid < 0 { -1 } else { seq + i },
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(format!("v{seq}-{i}"))),
            headers: IndexMap::new(),
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .expect("batch");
    let request =
        ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![TopicProduceData::default(
        )
        .with_name(TopicName(StrBytes::from_static_str("idem")))
        .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch.freeze()))])]);
    let c = kafka.send(ApiKey::Produce, 9, &request);
    let response: ProduceResponse = kafka.receive(ApiKey::Produce, 9, c);
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn retried_batches_are_stored_once_and_sequences_are_checked() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let mut kafka = KafkaConn::connect(broker.kafka_port);
    assert_eq!(produce(&mut kafka, 42, 0, 0, 2), (0, 0));
    assert_eq!(produce(&mut kafka, 42, 0, 0, 2), (0, 0), "the retry gets the first answer again");
    assert_eq!(produce(&mut kafka, 42, 0, 5, 1).0, NOT_ENOUGH_REPLICAS, "ahead of the sequence: retriable");
    assert_eq!(produce(&mut kafka, 42, 0, 2, 1), (0, 2));
    assert_eq!(produce(&mut kafka, 42, 1, 0, 1), (0, 3), "a new epoch starts at 0");
    assert_eq!(produce(&mut kafka, 42, 0, 3, 1).0, INVALID_PRODUCER_EPOCH, "the old epoch is fenced");
    // Nothing was stored twice: the next record lands at offset 4.
    assert_eq!(produce(&mut kafka, -1, -1, -1, 1), (0, 4));
}

#[test]
fn a_retry_after_a_restart_is_answered_not_stored_again() {
    let mut broker = Broker::configure("", &[&kafka_library()]).start();
    let mut kafka = KafkaConn::connect(broker.kafka_port);
    assert_eq!(produce(&mut kafka, 77, 0, 0, 3), (0, 0));
    assert_eq!(produce(&mut kafka, 77, 0, 3, 2), (0, 3));
    assert_eq!(produce(&mut kafka, 78, 2, 10, 1), (0, 5), "another producer, at epoch 2");
    drop(kafka);
    // The answers above came after fsync (acks=-1): the log has them all.
    broker.kill(libc::SIGKILL);
    let broker = broker.restart();
    let mut kafka = KafkaConn::connect(broker.kafka_port);
    assert_eq!(produce(&mut kafka, 77, 0, 3, 2), (0, 3), "the retry of the last batch gets its first answer");
    assert_eq!(produce(&mut kafka, 77, 0, 0, 3), (0, 0), "and so does a retry of the batch before it");
    assert_eq!(produce(&mut kafka, 77, 0, 9, 1).0, NOT_ENOUGH_REPLICAS, "ahead: the sequence survived the restart");
    assert_eq!(produce(&mut kafka, 78, 1, 11, 1).0, INVALID_PRODUCER_EPOCH, "the old epoch is still fenced");
    assert_eq!(produce(&mut kafka, 77, 0, 5, 1), (0, 6));
    assert_eq!(produce(&mut kafka, -1, -1, -1, 1), (0, 7), "nothing was stored twice");
    assert!(broker.log().contains("idempotent producers rebuilt from the log's tail"), "{}", broker.log());
}
