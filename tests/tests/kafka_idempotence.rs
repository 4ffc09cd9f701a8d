//! Idempotent producers on the real binary, through the raw wire protocol: a
//! retried batch is answered with its first offset and not stored twice; a
//! batch ahead of its producer's sequence gets a retriable error; an old
//! epoch is fenced; and all of it holds across a restart (kill -9).

use bytes::Bytes;
use polyport_tests::{
    kafka::{self, record_batch, KafkaConn},
    kafka_library, Broker,
};

const NOT_ENOUGH_REPLICAS: i16 = 19;
const INVALID_PRODUCER_EPOCH: i16 = 47;

/// Produces `count` records as producer `pid`/`epoch` from sequence `seq`
/// (`pid` -1: not idempotent) with acks=-1; returns (error code, base offset).
fn produce(kafka: &mut KafkaConn, pid: i64, epoch: i16, seq: i32, count: i32) -> (i16, i64) {
    let values: Vec<Bytes> = (0..count).map(|i| Bytes::from(format!("v{seq}-{i}"))).collect();
    let batch = record_batch(&values, pid, epoch, seq, 1_700_000_000_000);
    kafka::produce(kafka, "idem", 0, -1, batch.freeze()).expect("answered")
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
