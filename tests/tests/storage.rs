//! Storage through the handler ABI, on the real binary: the out-of-tree
//! `line` handler appends, reads and acknowledges through the host services.

use std::{path::PathBuf, time::Duration};

use polyport_tests::{
    free_port,
    line::{line_handler, Line},
    Broker,
};

fn broker(port: u16, extra: &str) -> Broker {
    Broker::configure(
        &format!(
            "messagingProtocols=line\nlineListener=127.0.0.1:{port}\nmanagedLedgerMaxSizePerLedgerMbytes=1\n\
             managedLedgerCursorFlushIntervalMs=50\n{extra}"
        ),
        &[line_handler()],
    )
}

#[test]
fn acknowledged_appends_survive_kill_9_and_offsets_stay_dense() {
    let port = free_port();
    let mut broker = broker(port, "").start();
    let mut line = Line::connect(port);
    let filler = "x".repeat(20_000);
    let mut expected = Vec::new();
    for i in 0..150 {
        let word = format!("m{i}-{filler}");
        let offset = line.call(&format!("PUB orders {word}"));
        assert_eq!(offset, i.to_string(), "offsets are dense");
        expected.push(word);
    }
    assert_eq!(line.call("SUB orders audit"), "0 150");
    assert_eq!(line.call("ACK orders audit 42"), "42 108");
    std::thread::sleep(Duration::from_millis(300)); // past the cursor flush interval
    broker.kill(libc::SIGKILL);

    let broker = broker.restart();
    let mut line = Line::connect(port);
    assert_eq!(line.call("RANGE orders"), "0 150");
    let got = line.call("GET orders 0 1000");
    let words: Vec<&str> = got.split(' ').collect();
    assert_eq!(words.len(), 150);
    for (i, (w, e)) in words.iter().zip(&expected).enumerate() {
        assert_eq!(*w, format!("{i}={e}"));
    }
    assert_eq!(line.call("CURSORS orders"), "audit:42:108", "the cursor survived kill -9");
    // Its reads start again at the mark-delete, then go on from where they ended.
    let next = line.call("NEXT orders audit 2");
    assert!(next.starts_with("42=m42-") && next.contains(" 43=m43-"), "{}", &next[..40.min(next.len())]);
    assert!(line.call("NEXT orders audit 1").starts_with("44=m44-"));
    assert_eq!(line.call("PUB orders after"), "150", "appends continue densely after the restart");
    // Pulsar message ids and offsets address the same messages, across segments.
    let id = line.call("MSGID orders 120");
    assert_eq!(line.call(&format!("OFFSET orders {id}")), "120");
    assert!(broker.log().contains("ledger opened"), "{}", broker.log());
}

#[test]
fn topics_and_bad_input_get_precise_errors() {
    let port = free_port();
    let broker = broker(port, "allowAutoTopicCreation=false").start();
    let mut line = Line::connect(port);
    assert_eq!(
        line.call("PUB missing hello"),
        "ERR not_found topic persistent://public/default/missing does not exist"
    );
    assert_eq!(line.call("CREATE parts 3"), "created");
    assert_eq!(
        line.call("CREATE parts 3"),
        "ERR already_exists topic persistent://public/default/parts already exists"
    );
    assert_eq!(line.call("PUB parts-partition-2 a"), "0");
    assert!(line
        .call("PUB parts-partition-3 a")
        .starts_with("ERR invalid_argument persistent://public/default/parts has 3 partitions"));
    assert!(line
        .call("PUB parts a")
        .starts_with("ERR invalid_argument persistent://public/default/parts is partitioned"));
    assert!(line.call("PUB a/b/c/d x").starts_with("ERR invalid_argument invalid topic name"));
    assert_eq!(line.call("GET parts-partition-2 5 10"), "ERR out_of_range offset 5 is outside the log of persistent://public/default/parts-partition-2: valid offsets are 0 to 1 (end exclusive)");
    assert_eq!(line.call("TOPICS public/default"), "persistent://public/default/parts:3");
    assert_eq!(line.call("DELETE parts"), "deleted");
    assert_eq!(line.call("TOPICS public/default"), "");
    assert!(line.call("TOPICS nope/nope").starts_with("ERR not_found namespace nope/nope"));
    drop(broker);
}

#[test]
fn a_corrupt_topic_is_refused_and_the_rest_of_the_broker_serves() {
    let port = free_port();
    let mut broker = broker(port, "").start();
    let mut line = Line::connect(port);
    let filler = "y".repeat(100_000);
    for i in 0..30 {
        line.call(&format!("PUB bad m{i}-{filler}"));
        line.call(&format!("PUB good m{i}"));
    }
    broker.kill(libc::SIGTERM);
    // Damage a sealed segment of "bad" and drop its index so it is scanned.
    let dir = broker.data_dir().join("ledgers/public/default/bad");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "several segments: {segments:?}");
    let victim = &segments[0];
    let mut bytes = std::fs::read(victim).expect("read");
    bytes[64 + 48 + 10] ^= 0x55;
    std::fs::write(victim, &bytes).expect("write");
    std::fs::remove_file(victim.with_extension("idx")).expect("remove idx");

    let broker = broker.restart();
    let mut line = Line::connect(port);
    let reply = line.call("GET bad 0 1");
    assert!(reply.starts_with("ERR corrupt topic persistent://public/default/bad: ledger"), "{reply}");
    assert!(reply.contains("00000000000000000001.log at byte 64: CRC mismatch inside a sealed segment"), "{reply}");
    assert_eq!(line.call("GET good 0 2"), "0=m0 1=m1", "other topics serve");
    assert_eq!(line.call("PUB good more"), "30");
    assert!(broker.log().contains("topic refused"), "{}", broker.log());
}

#[test]
fn a_kafka_group_commit_is_a_durable_cursor_pulsar_side_tools_see() {
    use kafka_protocol::messages::{
        offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
        ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, GroupId, OffsetCommitRequest, OffsetCommitResponse,
        TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use polyport_tests::{kafka::KafkaConn, kafka_library};

    let port = free_port();
    let broker = Broker::configure(
        &format!("messagingProtocols=kafka,line\nlineListener=127.0.0.1:{port}"),
        &[&kafka_library(), line_handler()],
    )
    .start();
    let mut line = Line::connect(port);
    for i in 0..10 {
        line.call(&format!("PUB shared m{i}"));
    }
    let mut kafka = KafkaConn::connect(broker.kafka_port);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("billing")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("shared")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(6)])]);
    let c = kafka.send(ApiKey::OffsetCommit, 8, &commit);
    let response: OffsetCommitResponse = kafka.receive(ApiKey::OffsetCommit, 8, c);
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    // The group is a durable cursor with its backlog, in the ledger's listing.
    assert_eq!(line.call("CURSORS shared"), "billing:6:4");
    // Deleting the group deletes its cursor: retention no longer waits for it.
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(StrBytes::from_static_str("billing"))]);
    let c = kafka.send(ApiKey::DeleteGroups, 2, &delete);
    let response: DeleteGroupsResponse = kafka.receive(ApiKey::DeleteGroups, 2, c);
    assert_eq!(response.results[0].error_code, 0);
    assert_eq!(line.call("CURSORS shared"), "");
}

#[test]
fn a_read_waits_for_a_topic_not_yet_created_and_a_handle_outlives_its_topic() {
    let port = free_port();
    let broker = broker(port, "").start();
    // A reader opens a topic nobody created yet, with a wait: no polling.
    let waiter = std::thread::spawn(move || {
        let mut line = Line::connect(port);
        let started = std::time::Instant::now();
        (line.call("WAIT later 0 10000"), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut line = Line::connect(port);
    assert_eq!(line.call("PUB later hello"), "0");
    let (reply, waited) = waiter.join().expect("waiter");
    assert_eq!(reply, "0=hello");
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(5), "{waited:?}");
    // The wait is bounded: a topic that never comes, an offset never written.
    let started = std::time::Instant::now();
    assert_eq!(line.call("WAIT never 0 300"), "ERR not_found topic persistent://public/default/never does not exist");
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    assert_eq!(line.call("WAIT later 5 300"), "timeout");

    // This connection keeps its handle of "gone" across the topic's deletion:
    // reads answer not_found, and an append (the handle was opened by one)
    // creates the topic again, from offset 0.
    assert_eq!(line.call("PUB gone a"), "0");
    assert_eq!(line.call("PUB gone b"), "1");
    assert_eq!(line.call("DELETE gone"), "deleted");
    assert_eq!(line.call("GET gone 0 1"), "ERR not_found topic persistent://public/default/gone does not exist");
    assert_eq!(line.call("PUB gone c"), "0");
    assert_eq!(line.call("GET gone 0 5"), "0=c");
    assert_eq!(Line::connect(port).call("GET gone 0 5"), "0=c", "a new handle reads the new topic");
    drop(broker);
}
