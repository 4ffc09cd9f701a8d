//! The group coordinator on the real binary, through the raw Kafka wire
//! protocol: the JoinGroup handshake and its errors, and the system topic
//! staying short (snapshot + truncation) while every commit survives kill -9.

use bytes::Bytes;
use kafka_protocol::{
    messages::{
        join_group_request::JoinGroupRequestProtocol,
        offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
        offset_fetch_request::OffsetFetchRequestTopic,
        ApiKey, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest,
        OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
    },
    protocol::StrBytes,
};
use polyport_tests::{
    free_port,
    kafka::KafkaConn,
    kafka_library,
    line::{line_handler, Line},
    Broker,
};

const MEMBER_ID_REQUIRED: i16 = 79;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const ILLEGAL_GENERATION: i16 = 22;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn join(kafka: &mut KafkaConn, group: &str, member: &str, session_ms: i32) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"\x00\x00"))]);
    let c = kafka.send(ApiKey::JoinGroup, 7, &request);
    kafka.receive(ApiKey::JoinGroup, 7, c)
}

#[test]
fn join_group_hands_out_member_ids_and_refuses_strangers() {
    let broker = Broker::configure("groupInitialRebalanceDelayMs=0", &[&kafka_library()]).start();
    let mut kafka = KafkaConn::connect(broker.kafka_port);
    let first = join(&mut kafka, "wire-g", "", 10_000);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    assert!(!first.member_id.is_empty());
    let joined = join(&mut kafka, "wire-g", &first.member_id, 10_000);
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(joined.leader, first.member_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(join(&mut kafka, "wire-g", "stranger", 10_000).error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(join(&mut kafka, "wire-g", "", 10).error_code, INVALID_SESSION_TIMEOUT);
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(GroupId(s("wire-g")))
        .with_member_id(first.member_id.clone())
        .with_generation_id(7);
    let c = kafka.send(ApiKey::Heartbeat, 4, &heartbeat);
    let response: HeartbeatResponse = kafka.receive(ApiKey::Heartbeat, 4, c);
    assert_eq!(response.error_code, ILLEGAL_GENERATION);
}

fn commit(kafka: &mut KafkaConn, group: &str, topic: &str, offsets: impl Iterator<Item = i64>) {
    let partitions = offsets
        .map(|o| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(o)
                .with_committed_metadata(Some(s(&format!("at {o}"))))
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(partitions)]);
    let c = kafka.send(ApiKey::OffsetCommit, 8, &request);
    let response: OffsetCommitResponse = kafka.receive(ApiKey::OffsetCommit, 8, c);
    assert!(response.topics[0].partitions.iter().all(|p| p.error_code == 0), "{response:?}");
}

fn committed(kafka: &mut KafkaConn, group: &str, topic: &str) -> (i64, String) {
    let request = OffsetFetchRequest::default().with_group_id(GroupId(s(group))).with_topics(Some(vec![
        OffsetFetchRequestTopic::default().with_name(TopicName(s(topic))).with_partition_indexes(vec![0]),
    ]));
    let c = kafka.send(ApiKey::OffsetFetch, 7, &request);
    let response: OffsetFetchResponse = kafka.receive(ApiKey::OffsetFetch, 7, c);
    let p = &response.topics[0].partitions[0];
    (p.committed_offset, p.metadata.as_deref().unwrap_or("").to_owned())
}

#[test]
fn the_system_topic_is_compacted_and_every_commit_survives_kill_9() {
    let port = free_port();
    let mut broker = Broker::configure(
        &format!(
            "messagingProtocols=kafka,line\nlineListener=127.0.0.1:{port}\noffsetsTopicNumPartitions=1\n\
             managedLedgerMaxSizePerLedgerMbytes=1"
        ),
        &[&kafka_library(), line_handler()],
    )
    .start();
    let mut line = Line::connect(port);
    line.call("PUB snap m0");
    let mut kafka = KafkaConn::connect(broker.kafka_port);
    commit(&mut kafka, "other", "snap", std::iter::once(1));
    // 12,000 records (100 per request) pass the snapshot threshold (10,000).
    for round in 0..120 {
        commit(&mut kafka, "snap-g", "snap", (0..100).map(|i| round * 100 + i));
    }
    let system = "persistent://public/__kafka/__consumer_offsets-partition-0";
    let range = line.call(&format!("RANGE {system}"));
    let start: u64 = range.split(' ').next().and_then(|s| s.parse().ok()).expect("a range");
    assert!(start >= 10_000, "the log before the snapshot is deleted: {range}");

    broker.kill(libc::SIGKILL);
    let broker = broker.restart();
    let mut kafka = KafkaConn::connect(broker.kafka_port);
    assert_eq!(committed(&mut kafka, "snap-g", "snap"), (11_999, "at 11999".to_owned()));
    assert_eq!(committed(&mut kafka, "other", "snap"), (1, "at 1".to_owned()));
    assert!(broker.log().contains("coordinator partition loaded"), "{}", broker.log());
}

#[test]
fn offset_fetch_v8_answers_several_groups_at_once() {
    use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
    let port = free_port();
    let broker = Broker::configure(
        &format!("messagingProtocols=kafka,line\nlineListener=127.0.0.1:{port}"),
        &[&kafka_library(), line_handler()],
    )
    .start();
    Line::connect(port).call("PUB many m0");
    let mut kafka = KafkaConn::connect(broker.kafka_port);
    commit(&mut kafka, "first", "many", std::iter::once(1));
    commit(&mut kafka, "second", "many", std::iter::once(1).chain(std::iter::once(0)));
    let group = |id: &str, topics: Option<Vec<OffsetFetchRequestTopics>>| {
        OffsetFetchRequestGroup::default().with_group_id(GroupId(s(id))).with_topics(topics)
    };
    let request = OffsetFetchRequest::default().with_groups(vec![
        group("first", None),
        group(
            "second",
            Some(vec![OffsetFetchRequestTopics::default()
                .with_name(TopicName(s("many")))
                .with_partition_indexes(vec![0])]),
        ),
        group("nobody", None),
    ]);
    let c = kafka.send(ApiKey::OffsetFetch, 8, &request);
    let response: OffsetFetchResponse = kafka.receive(ApiKey::OffsetFetch, 8, c);
    // (group, [(partition, offset, metadata)])
    type Answer = (String, Vec<(i32, i64, String)>);
    let answers: Vec<Answer> = response
        .groups
        .iter()
        .map(|g| {
            let partitions = g
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| (p.partition_index, p.committed_offset, p.metadata.as_deref().unwrap_or("").to_owned()))
                .collect();
            (g.group_id.to_string(), partitions)
        })
        .collect();
    assert_eq!(
        answers,
        [
            ("first".to_owned(), vec![(0, 1, "at 1".to_owned())]),
            ("second".to_owned(), vec![(0, 0, "at 0".to_owned())]),
            ("nobody".to_owned(), vec![]),
        ]
    );
}
