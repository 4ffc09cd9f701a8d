//! What a hostile or broken client sends, against the real binary (issue
//! 12): counts and sizes that lie, frames announced and never sent, too many
//! connections or producers. Each gets a precise error or a closed
//! connection; the broker keeps serving everyone else, allocates nothing a
//! client only announced, and a stored entry that cannot be decoded is an
//! error to its reader, never a crash, after a restart too.

use std::{io::Write, net::TcpStream, time::Duration};

use bytes::Bytes;
use kafka_protocol::{
    messages::{ApiKey, ApiVersionsRequest},
    records::RecordBatchDecoder,
};
use polyport_tests::{
    kafka::{fetch_raw, produce, record_batch, KafkaConn},
    kafka_library,
    pulsar::{batch_member, message_frame, metadata, send_command, RawPulsar},
    Broker,
};
use pulsar::message::proto::{base_command::Type, CompressionType, MessageMetadata, ServerError};

const CORRUPT_MESSAGE: i16 = 2;

/// The values of the records a Kafka Fetch from `offset` returns.
fn kafka_values(port: u16, topic: &str, offset: i64) -> (i16, Vec<(i64, Bytes)>) {
    let mut conn = KafkaConn::connect(port);
    let (error, mut records) = fetch_raw(&mut conn, topic, 0, offset, 1 << 20);
    let sets = RecordBatchDecoder::decode_all(&mut records).expect("batches");
    let values = sets.into_iter().flat_map(|s| s.records).map(|r| (r.offset, r.value.unwrap_or_default())).collect();
    (error, values)
}

/// The first poison pill found: a Pulsar batch whose metadata claims
/// 2^31-1 messages for one 5-byte message was stored, and the first Kafka
/// reader made the broker allocate 240 GB and abort, after every restart.
#[test]
fn a_pulsar_batch_claiming_more_messages_than_its_bytes_is_refused() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let mut raw = RawPulsar::connected(broker.pulsar_port);
    assert_eq!(raw.producer("persistent://public/default/poison", 1).r#type, Type::ProducerSuccess as i32);
    let hello = batch_member(b"hello");
    raw.write(&message_frame(&send_command(1, 0, i32::MAX), &metadata(Some(i32::MAX)), &hello, false));
    let answer = raw.receive().expect("an answer");
    let error = answer.send_error.expect("SEND_ERROR");
    assert_eq!(error.error, ServerError::NotAllowedError as i32);
    assert!(error.message.contains("claims 2147483647 messages"), "{}", error.message);
    // A compressed batch claiming more than the limit uncompressed.
    let huge = MessageMetadata {
        compression: Some(CompressionType::Zstd as i32),
        uncompressed_size: Some(u32::MAX),
        ..metadata(Some(1))
    };
    raw.write(&message_frame(&send_command(1, 1, 1), &huge, b"not zstd", false));
    let error = raw.receive().expect("an answer").send_error.expect("SEND_ERROR");
    assert!(error.message.contains("4294967295 bytes uncompressed"), "{}", error.message);
    // The same connection goes on: a true batch of two is stored at offsets 0-1.
    let mut two = batch_member(b"a");
    two.extend(batch_member(b"b"));
    raw.write(&message_frame(&send_command(1, 2, 2), &metadata(Some(2)), &two, false));
    assert_eq!(raw.receive().expect("an answer").r#type, Type::SendReceipt as i32);
    let (error, values) = kafka_values(broker.kafka_port, "poison", 0);
    assert_eq!(error, 0);
    assert_eq!(values, [(0, Bytes::from_static(b"a")), (1, Bytes::from_static(b"b"))]);
}

/// An entry whose batch does not decode (its count fits its bytes, but its
/// members do not) is stored as Pulsar stores it; a Kafka reader gets
/// CORRUPT_MESSAGE for it, before and after a kill -9, and reads past it.
#[test]
fn a_stored_entry_that_does_not_decode_is_an_error_to_its_reader_never_a_crash() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let mut raw = RawPulsar::connected(broker.pulsar_port);
    assert_eq!(raw.producer("persistent://public/default/undecodable", 1).r#type, Type::ProducerSuccess as i32);
    let mut three = batch_member(b"a");
    three.extend([0xff; 12]); // where members 1 and 2 should be
    raw.write(&message_frame(&send_command(1, 0, 3), &metadata(Some(3)), &three, false));
    assert_eq!(raw.receive().expect("an answer").r#type, Type::SendReceipt as i32);
    raw.write(&message_frame(&send_command(1, 1, 1), &metadata(None), b"after", false));
    assert_eq!(raw.receive().expect("an answer").r#type, Type::SendReceipt as i32);
    drop(raw);
    let check = |broker: &Broker| {
        let (error, values) = kafka_values(broker.kafka_port, "undecodable", 0);
        assert_eq!((error, values.len()), (CORRUPT_MESSAGE, 0));
        let (error, values) = kafka_values(broker.kafka_port, "undecodable", 3);
        assert_eq!(error, 0);
        assert_eq!(values, [(3, Bytes::from_static(b"after"))]);
    };
    check(&broker);
    let mut broker = broker;
    broker.kill(libc::SIGKILL);
    let broker = broker.restart();
    check(&broker);
    assert!(broker.log().contains("entry not converted for a Kafka reader"), "{}", broker.log());
}

/// A Kafka batch whose count (and last offset delta) claims a million
/// records in one record's bytes: the count decides how many offsets the
/// entry takes, so it is refused.
#[test]
fn a_kafka_batch_claiming_more_records_than_its_bytes_is_refused() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let mut batch = record_batch(&[Bytes::from_static(b"one")], -1, -1, -1, 1_700_000_000_000);
    batch[23..27].copy_from_slice(&999_999i32.to_be_bytes()); // last offset delta
    batch[57..61].copy_from_slice(&1_000_000i32.to_be_bytes()); // record count
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(produce(&mut conn, "counted", 0, -1, batch.freeze()), Some((CORRUPT_MESSAGE, -1)));
    let honest = record_batch(&[Bytes::from_static(b"one")], -1, -1, -1, 1_700_000_000_000);
    assert_eq!(produce(&mut conn, "counted", 0, -1, honest.freeze()), Some((0, 0)));
}

/// Frames announced at the largest size and never sent: the broker's buffers
/// grow with the bytes that arrive, not with the sizes announced (40 Pulsar
/// frames of 5 MB took 200 MB before).
#[test]
fn frames_announced_but_never_sent_take_no_memory() {
    let broker = Broker::configure("kafkaMaxRequestBytes=104857600", &[&kafka_library()]).start();
    let before = broker.rss_bytes();
    let mut held = Vec::new();
    for i in 0..40 {
        let mut pulsar = TcpStream::connect(("127.0.0.1", broker.pulsar_port)).expect("connect");
        pulsar.write_all(&5_000_000u32.to_be_bytes()).expect("size");
        pulsar.write_all(&[0; 100]).expect("a few bytes");
        let mut kafka = TcpStream::connect(("127.0.0.1", broker.kafka_port)).expect("connect");
        kafka.write_all(&100_000_000i32.to_be_bytes()).expect("size");
        kafka.write_all(&[0, 18, 0, 3, 0, 0, 0, i]).expect("a header's worth");
        held.push((pulsar, kafka));
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown = broker.rss_bytes().saturating_sub(before);
    assert!(grown < 48 << 20, "the broker grew by {} MB", grown >> 20);
    drop(held);
    // Everyone else is served.
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let batch = record_batch(&[Bytes::from_static(b"fine")], -1, -1, -1, 1_700_000_000_000);
    assert_eq!(produce(&mut conn, "after", 0, -1, batch.freeze()), Some((0, 0)));
}

/// `brokerMaxConnections` counts every listener's connections together;
/// the one past it is closed at once, and a freed place is taken again.
#[test]
fn connections_past_the_limit_are_closed_and_places_are_freed() {
    let broker = Broker::configure("brokerMaxConnections=3", &[&kafka_library()]).start();
    let mut kafka: Vec<KafkaConn> = (0..2).map(|_| KafkaConn::connect(broker.kafka_port)).collect();
    let pulsar = RawPulsar::connected(broker.pulsar_port);
    for conn in &mut kafka {
        let batch = record_batch(&[Bytes::from_static(b"x")], -1, -1, -1, 1_700_000_000_000);
        assert_eq!(produce(conn, "limited", 0, -1, batch.freeze()).map(|r| r.0), Some(0));
    }
    let mut over = KafkaConn::connect(broker.kafka_port);
    assert!(over.is_closed_by_broker(), "a fourth Kafka connection is closed");
    let mut over = RawPulsar::connect(broker.pulsar_port);
    assert!(over.receive().is_none(), "and so is a Pulsar one");
    assert!(broker.log().contains("3 connections are open (brokerMaxConnections)"), "{}", broker.log());
    drop(pulsar);
    // The place is freed when the broker sees the close: a new connection
    // is served within moments.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut conn = KafkaConn::connect(broker.kafka_port);
        conn.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        if conn.read_frame().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the freed place was not given again");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `maxProducersPerConnection`: the producer past it gets an error naming the key.
#[test]
fn producers_past_the_per_connection_limit_are_refused() {
    let broker = Broker::configure("maxProducersPerConnection=2", &[&kafka_library()]).start();
    let mut raw = RawPulsar::connected(broker.pulsar_port);
    for id in 1..=2 {
        assert_eq!(raw.producer("persistent://public/default/many", id).r#type, Type::ProducerSuccess as i32);
    }
    let error = raw.producer("persistent://public/default/many", 3).error.expect("ERROR");
    assert_eq!(error.error, ServerError::NotAllowedError as i32);
    assert!(error.message.contains("maxProducersPerConnection"), "{}", error.message);
}

/// A request whose array count claims 2^31-1 elements (a 14-byte Metadata
/// request) made the Kafka codec ask for 154 GB and the broker abort. Both
/// array encodings, the classic (i32) and the compact (varint) one: the
/// connection is closed as malformed, and the broker serves on.
#[test]
fn a_request_whose_array_count_lies_closes_its_connection_only() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    // Metadata v1: topics is an i32-counted array.
    let mut conn = KafkaConn::connect(broker.kafka_port);
    conn.send_frame(ApiKey::Metadata as i16, 1, &i32::MAX.to_be_bytes());
    assert!(conn.is_closed_by_broker(), "closed as malformed");
    // Metadata v9 (flexible): a compact array, count + 1 as an unsigned varint (2^32-1).
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let mut body = vec![0u8]; // the header's tagged fields
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    conn.send_frame(ApiKey::Metadata as i16, 9, &body);
    assert!(conn.is_closed_by_broker(), "closed as malformed");
    // Produce v9: partitions of one topic claim 2^31-1 entries.
    let mut conn = KafkaConn::connect(broker.kafka_port);
    // Header tagged fields, no transactional id, acks -1, timeout 5000, one
    // topic "t", then its partitions' compact count.
    let body = [0u8, 0, 0xff, 0xff, 0, 0, 0x13, 0x88, 2, 2, b't', 0xff, 0xff, 0xff, 0xff, 0x07];
    conn.send_frame(ApiKey::Produce as i16, 9, &body);
    assert!(conn.is_closed_by_broker(), "closed as malformed");
    let before = broker.rss_bytes();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let batch = record_batch(&[Bytes::from_static(b"still here")], -1, -1, -1, 1_700_000_000_000);
    assert_eq!(produce(&mut conn, "survivor", 0, -1, batch.freeze()), Some((0, 0)));
    assert!(broker.rss_bytes() < before + (256 << 20), "no memory kept");
    assert!(broker.log().contains("cannot decode request"), "{}", broker.log());
}
