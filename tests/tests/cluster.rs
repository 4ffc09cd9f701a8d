//! Three brokers on one etcd (tests/src/cluster.rs): a topic's partitions
//! spread over all of them, Kafka and Pulsar clients bootstrapped at any
//! one broker routed to each partition's owner, a group whose coordinator
//! is another broker, and partitions served again after a broker stops,
//! dies, or is paused past its session (the zombie, which must acknowledge
//! nothing after).
//!
//! Without tiered storage (not built yet) a partition that moves starts on
//! its new owner from that broker's local ledger: these tests check
//! routing, ownership and the fence, not that a moved partition keeps its
//! records.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::TryStreamExt;
use kafka_protocol::{
    messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse},
    protocol::StrBytes,
};
use polyport_tests::{
    cluster::{try_metadata, Cluster, SESSION_MS},
    kafka::{fetch_raw, produce, record_batch, KafkaConn},
};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, CommitMode, Consumer},
    message::Message,
    producer::{FutureProducer, FutureRecord},
    ClientConfig,
};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// Metadata v12 for `topic` from the broker at `port`: (node id → Kafka
/// port of every broker listed, leader node id per partition).
fn metadata(port: u16, topic: &str) -> (BTreeMap<i32, i32>, Vec<i32>) {
    try_metadata(port, topic).expect("a Metadata response")
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "30000")
        .set("topic.metadata.refresh.interval.ms", "1000");
    c
}

/// A consumer of `group` subscribed to `topic` from its start, committing by hand.
fn group_member(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create().expect("admin");
    let created = admin
        .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("create_topics");
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
}

/// Waits until every partition of `topic` takes a produce through the
/// leader that broker `via` names; how long that took.
fn until_all_served(cluster: &Cluster, via: usize, topic: &str, partitions: usize, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut served = BTreeSet::new();
    while served.len() < partitions {
        for p in 0..partitions {
            if !served.contains(&p) && cluster.produce_once(via, topic, p, "probe").is_some() {
                served.insert(p);
            }
        }
        assert!(started.elapsed() < limit, "only partitions {served:?} of {topic} served after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_spread_a_topic_and_clients_bootstrapped_anywhere_reach_every_partition() {
    let cluster = Cluster::start(3, "");
    create_topic(&cluster.kafka(1), "spread", 12).await;

    // Every broker names the same three brokers and the same leaders,
    // spread over all of them.
    let (brokers, leaders) = metadata(cluster.broker(0).kafka_port, "spread");
    assert_eq!(brokers.len(), 3, "{brokers:?}");
    let ports: BTreeSet<i32> = brokers.values().copied().collect();
    let ours: BTreeSet<i32> = (0..3).map(|i| i32::from(cluster.broker(i).kafka_port)).collect();
    assert_eq!(ports, ours);
    assert_eq!(leaders.len(), 12);
    let spread: BTreeSet<i32> = leaders.iter().copied().collect();
    assert_eq!(spread.len(), 3, "every broker leads some partition: {leaders:?}");
    for i in 1..3 {
        assert_eq!(metadata(cluster.broker(i).kafka_port, "spread"), (brokers.clone(), leaders.clone()));
    }

    // A non-owner refuses the partition's appends with Kafka's retriable error.
    let owner = brokers[&leaders[0]];
    let other = (0..3).find(|&i| i32::from(cluster.broker(i).kafka_port) != owner).expect("another broker");
    let mut conn = KafkaConn::connect(cluster.broker(other).kafka_port);
    let batch = record_batch(&[Bytes::from_static(b"x")], -1, -1, -1, 1_700_000_000_000).freeze();
    assert_eq!(produce(&mut conn, "spread", 0, -1, batch).map(|r| r.0), Some(NOT_LEADER_OR_FOLLOWER));

    // An idempotent producer bootstrapped at one broker reaches all three.
    let producer: FutureProducer = config(&cluster.kafka(2))
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let sends: Vec<_> = (0..1200)
        .map(|i| {
            let value = format!("m{i}");
            let record = FutureRecord::to("spread").partition(i % 12).key("k").payload(&value);
            producer.send_result(record).map_err(|(e, _)| e).expect("queued")
        })
        .collect();
    for send in sends {
        send.await.expect("delivery report").map_err(|(e, _)| e).expect("delivered");
    }

    // The group's coordinator, then a consumer bootstrapped at another broker.
    let mut conn = KafkaConn::connect(cluster.broker(0).kafka_port);
    let request = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("spread-group"));
    let c = conn.send(ApiKey::FindCoordinator, 3, &request);
    let found: FindCoordinatorResponse = conn.receive(ApiKey::FindCoordinator, 3, c);
    assert_eq!(found.error_code, 0, "{found:?}");
    let coordinator = cluster.by_kafka_port(found.port).expect("the coordinator is one of ours");
    let elsewhere = (coordinator + 1) % 3;
    let consumer = group_member(&cluster.kafka(elsewhere), "spread-group", "spread");
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 1200 && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(500)) {
            let message = message.expect("message");
            let value = String::from_utf8(message.payload().expect("payload").to_vec()).expect("utf-8");
            assert!(seen.insert(value.clone()), "{value} delivered twice");
        }
    }
    assert_eq!(seen.len(), 1200, "the group read every record once");
    consumer.commit_consumer_state(CommitMode::Sync).expect("commit at the coordinator");

    // kcat, bootstrapped at one broker, lists all three.
    let listed = std::process::Command::new("kcat")
        .args(["-b", &cluster.kafka(0), "-L", "-t", "spread", "-m", "10"])
        .output()
        .expect("kcat runs");
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains(" 3 brokers:"), "{text}");

    // A Pulsar client at one broker reads the same partitions, each looked
    // up and redirected to its owner.
    let pulsar: pulsar::Pulsar<_> =
        pulsar::Pulsar::builder(cluster.pulsar(1), pulsar::TokioExecutor).build().await.expect("connects");
    let mut reader: pulsar::Consumer<Vec<u8>, _> = pulsar
        .consumer()
        .with_topic("persistent://public/default/spread")
        .with_subscription("pulsar-side")
        .with_options(
            pulsar::ConsumerOptions::default().with_initial_position(pulsar::consumer::InitialPosition::Earliest),
        )
        .build()
        .await
        .expect("consumer on every partition");
    let mut from_pulsar = BTreeSet::new();
    while from_pulsar.len() < 1200 {
        let next = tokio::time::timeout(Duration::from_secs(30), reader.try_next()).await;
        let message = next.expect("a message within 30 s").expect("receive").expect("a message");
        reader.ack(&message).await.expect("ack");
        from_pulsar.insert(String::from_utf8(message.payload.data.clone()).expect("utf-8"));
    }
    assert_eq!(from_pulsar, seen);
}

/// Three brokers and `topic` with `partitions`, each owned (a produce
/// through its leader claims it): (the cluster, the owner of partition 0,
/// another broker).
fn owned_topic(topic: &str, partitions: usize) -> (Cluster, usize, usize) {
    let cluster = Cluster::start(3, "");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(create_topic(&cluster.kafka(0), topic, i32::try_from(partitions).expect("count")));
    until_all_served(&cluster, 0, topic, partitions, Duration::from_secs(10));
    let (brokers, leaders) = metadata(cluster.broker(0).kafka_port, topic);
    let owner = cluster.by_kafka_port(brokers[&leaders[0]]).expect("an owner");
    (cluster, owner, (owner + 1) % 3)
}

#[test]
fn a_stopped_broker_s_partitions_are_served_by_the_others_within_5_s() {
    let (mut cluster, stopped, via) = owned_topic("moving", 6);

    let exit = cluster.brokers[stopped].take().expect("running").terminate();
    assert!(exit.status.success(), "{}", exit.log);
    assert!(exit.log.contains("releasing every partition"), "{}", exit.log);
    let took = until_all_served(&cluster, via, "moving", 6, Duration::from_secs(5));
    eprintln!("graceful stop: every partition served again {took:?} after the broker exited");
    let (brokers, leaders) = metadata(cluster.broker(via).kafka_port, "moving");
    assert_eq!(brokers.len(), 2, "the stopped broker is gone: {brokers:?}");
    assert!(leaders.iter().all(|l| brokers.contains_key(l)), "{leaders:?} {brokers:?}");
}

#[test]
fn a_killed_broker_s_partitions_are_served_again_within_the_session_and_2_s() {
    let (mut cluster, killed, via) = owned_topic("crashing", 6);
    cluster.broker_mut(killed).kill(libc::SIGKILL);
    let limit = Duration::from_millis(SESSION_MS + 2000);
    let took = until_all_served(&cluster, via, "crashing", 6, limit);
    eprintln!("kill -9: every partition served again {took:?} after the kill (session {SESSION_MS} ms)");
}

#[test]
fn a_paused_owner_acknowledges_nothing_once_its_session_could_have_expired_then_rejoins() {
    let (cluster, zombie, via) = owned_topic("zombie", 3);
    let owner_port = i32::from(cluster.broker(zombie).kafka_port);
    // A connection to the owner opened before the pause, as a client's would be.
    let mut old = KafkaConn::connect(cluster.broker(zombie).kafka_port);
    let pid = cluster.broker(zombie).pid();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // Another broker takes partition 0 once the lease expires.
    let started = Instant::now();
    let new_owner = loop {
        if let Some(port) = cluster.produce_once(via, "zombie", 0, "after") {
            break port;
        }
        assert!(started.elapsed() < Duration::from_millis(SESSION_MS + 5000), "partition 0 not taken over");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_ne!(new_owner, owner_port);
    eprintln!("SIGSTOP: partition 0 served by another broker {:?} after the pause", started.elapsed());
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    // The old owner, resumed, acknowledges nothing and shows nothing.
    old.set_timeout(Duration::from_secs(10));
    let batch = record_batch(&[Bytes::from_static(b"late")], -1, -1, -1, 1_700_000_000_000).freeze();
    assert_eq!(produce(&mut old, "zombie", 0, -1, batch).map(|r| r.0), Some(NOT_LEADER_OR_FOLLOWER));
    assert_eq!(fetch_raw(&mut old, "zombie", 0, 0, 1 << 20).0, NOT_LEADER_OR_FOLLOWER);
    // Readers of the new owner never see the late write.
    let mut reader = KafkaConn::connect(u16::try_from(new_owner).expect("port"));
    let (code, records) = fetch_raw(&mut reader, "zombie", 0, 0, 1 << 20);
    assert_eq!(code, 0);
    assert!(!records.windows(4).any(|w| w == b"late"), "the zombie's write is visible");
    // It opens a new session by itself and rejoins the cluster.
    assert!(
        cluster.broker(zombie).wait_for_log("metadata session renewed", Duration::from_secs(10)),
        "{}",
        cluster.broker(zombie).log()
    );
    let rejoined = Instant::now();
    while metadata(cluster.broker(via).kafka_port, "zombie").0.len() < 3 {
        assert!(rejoined.elapsed() < Duration::from_secs(5), "the resumed broker is not listed again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_producer_rides_through_a_graceful_stop_with_no_error_and_no_duplicate() {
    let mut cluster = Cluster::start(3, "");
    create_topic(&cluster.kafka(0), "riding", 6).await;
    until_all_served(&cluster, 0, "riding", 6, Duration::from_secs(10));
    let (brokers, leaders) = metadata(cluster.broker(0).kafka_port, "riding");
    let stopped = cluster.by_kafka_port(brokers[&leaders[0]]).expect("an owner");
    let moved: BTreeSet<i32> = (0..6).filter(|&p| leaders[p as usize] == leaders[0]).collect();
    let bootstrap = (0..3).map(|i| cluster.kafka(i)).collect::<Vec<_>>().join(",");
    let producer: FutureProducer = config(&bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("retry.backoff.ms", "50")
        .create()
        .expect("producer");
    let send = |i: i32| {
        let value = format!("r{i}");
        let record = FutureRecord::to("riding").partition(i % 6).key("k").payload(&value);
        producer.send_result(record).map_err(|(e, _)| e).expect("queued")
    };
    let mut acknowledged = Vec::new();
    // A third acknowledged before the stop, the rest sent while it happens.
    let first: Vec<_> = (0..1000).map(send).collect();
    for (i, pending) in first.into_iter().enumerate() {
        let delivery = pending.await.expect("delivery report").map_err(|(e, _)| e).expect("delivered");
        acknowledged.push((i, delivery.partition, delivery.offset));
    }
    let broker = cluster.brokers[stopped].take().expect("running");
    let stopping = std::thread::spawn(move || broker.terminate());
    let mut rest = Vec::new();
    for i in 1000..3000 {
        rest.push(send(i));
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for (i, pending) in (1000..).zip(rest) {
        let delivery = pending.await.expect("delivery report").map_err(|(e, _)| e).expect("delivered");
        acknowledged.push((i, delivery.partition, delivery.offset));
    }
    let exit = stopping.join().expect("terminate");
    assert!(exit.status.success(), "{}", exit.log);

    // Read back from the two that remain: nothing twice, and every record
    // of the partitions that did not move.
    let survivor = (stopped + 1) % 3;
    let consumer = group_member(&cluster.kafka(survivor), "riding-check", "riding");
    let mut seen = BTreeSet::new();
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(5) {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("message");
            let value = String::from_utf8(message.payload().expect("payload").to_vec()).expect("utf-8");
            if value != "probe" {
                assert!(seen.insert(value.clone()), "{value} stored twice");
            }
            quiet = Instant::now();
        }
    }
    let before = acknowledged.iter().filter(|(i, p, _)| *i < 1000 && moved.contains(p)).count();
    let missing: Vec<usize> =
        acknowledged.iter().filter(|(i, _, _)| !seen.contains(&format!("r{i}"))).map(|(i, _, _)| *i).collect();
    let lost_elsewhere: Vec<&usize> = missing.iter().filter(|&&i| !moved.contains(&((i % 6) as i32))).collect();
    assert!(lost_elsewhere.is_empty(), "records of partitions that did not move are missing: {lost_elsewhere:?}");
    // Without tiered storage, a moved partition's new owner has none of
    // what its old owner stored: those records are missing (at least the
    // ones acknowledged before the stop began, and any the old owner
    // acknowledged while stopping), and every record acknowledged after
    // the move is there: in each moved partition, what is missing is a
    // prefix of what was sent to it (the producer keeps each partition's
    // order).
    assert!(missing.len() >= before, "{} missing, {before} acknowledged by the stopped broker", missing.len());
    for p in &moved {
        let sent: Vec<usize> = (0..3000).filter(|i| (i % 6) as i32 == *p).collect();
        let first_present = sent.iter().position(|i| seen.contains(&format!("r{i}"))).unwrap_or(sent.len());
        let gap = sent[first_present..].iter().find(|i| !seen.contains(&format!("r{i}")));
        assert!(gap.is_none(), "partition {p}: r{} is missing after records the new owner has", gap.unwrap_or(&0));
    }
    eprintln!(
        "graceful stop under load: 3000 acknowledged, none twice, no error; {} acknowledged by the stopped broker \
         ({before} before the stop began) stay in its ledger (no tiered storage yet)",
        missing.len()
    );
}

#[test]
fn a_topic_deleted_at_one_broker_is_deleted_at_its_owners_and_comes_back_empty() {
    let (cluster, owner, via) = owned_topic("short-lived", 3);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let deleting = (owner + 2) % 3;
    let admin: AdminClient<DefaultClientContext> = config(&cluster.kafka(deleting)).create().expect("admin");
    let deleted = runtime.block_on(admin.delete_topics(&["short-lived"], &AdminOptions::new())).expect("delete");
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    assert!(
        cluster.broker(owner).wait_for_log("topic deleted by another broker", Duration::from_secs(5)),
        "{}",
        cluster.broker(owner).log()
    );
    // The old owner no longer serves it (Fetch does not create topics).
    let mut old = KafkaConn::connect(cluster.broker(owner).kafka_port);
    assert_eq!(fetch_raw(&mut old, "short-lived", 0, 0, 1 << 20).0, UNKNOWN_TOPIC_OR_PARTITION);
    // Created again: every partition starts empty, wherever it is served.
    runtime.block_on(create_topic(&cluster.kafka(via), "short-lived", 3));
    let (brokers, leaders) = metadata(cluster.broker(via).kafka_port, "short-lived");
    for (partition, leader) in leaders.iter().enumerate() {
        let mut conn = KafkaConn::connect(u16::try_from(brokers[leader]).expect("port"));
        let (code, records) = fetch_raw(&mut conn, "short-lived", i32::try_from(partition).expect("index"), 0, 1 << 20);
        assert_eq!(code, 0, "partition {partition}");
        let at = cluster.by_kafka_port(brokers[leader]).expect("ours");
        assert!(
            records.is_empty(),
            "partition {partition} shows the deleted topic's records:\n{}",
            cluster.broker(at).log()
        );
    }
}

#[test]
fn producer_ids_come_in_blocks_shared_by_the_brokers_of_a_cluster() {
    use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
    let cluster = Cluster::start(3, "");
    let init = |port: u16| -> i64 {
        let mut conn = KafkaConn::connect(port);
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let c = conn.send(ApiKey::InitProducerId, 4, &request);
        let response: InitProducerIdResponse = conn.receive(ApiKey::InitProducerId, 4, c);
        assert_eq!(response.error_code, 0);
        response.producer_id.0
    };
    // Each broker takes its own block of 1000 from one counter in etcd:
    // ids never collide, whenever the brokers started.
    let firsts: Vec<i64> = (0..3).map(|i| init(cluster.broker(i).kafka_port)).collect();
    let low = *firsts.iter().min().expect("three");
    let mut offsets: Vec<i64> = firsts.iter().map(|id| id - low).collect();
    offsets.sort();
    assert_eq!(offsets, vec![0, 1000, 2000], "first ids {firsts:?}");
    // Within a block, ids follow one another.
    assert_eq!(init(cluster.broker(0).kafka_port), firsts[0] + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_assignment_is_refused_in_a_cluster_with_the_reason() {
    let cluster = Cluster::start(2, "");
    create_topic(&cluster.kafka(0), "listed", 1).await;
    let (brokers, _) = metadata(cluster.broker(0).kafka_port, "listed");
    let node = *brokers.keys().next().expect("a broker");
    let admin: AdminClient<DefaultClientContext> = config(&cluster.kafka(0)).create().expect("admin");
    let created = admin
        .create_topics(&[NewTopic::new("assigned", 1, TopicReplication::Variable(&[&[node]]))], &AdminOptions::new())
        .await
        .expect("create_topics");
    let refused = format!("{created:?}");
    assert!(refused.contains("InvalidReplicaAssignment"), "{refused}");
    // Without an assignment the same topic is created.
    create_topic(&cluster.kafka(0), "assigned", 2).await;
}
