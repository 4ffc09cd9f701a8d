//! Tiered storage on the real binary, with a real S3-compatible store
//! (SeaweedFS) and real clients (librdkafka through the rdkafka crate):
//! sealed segments are offloaded, a partition whose owner lost its disk is
//! restored from the bucket by another broker, a graceful stop hands every
//! acknowledged record over, and an unreachable store costs producers
//! nothing.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use polyport_tests::{
    cluster::{Cluster, SESSION_MS},
    free_port, kafka_library,
    seaweed::Seaweed,
    Broker,
};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    message::Message,
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Offset, TopicPartitionList,
};

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "30000")
        .set("topic.metadata.refresh.interval.ms", "1000");
    c
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create().expect("admin");
    let created = admin
        .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("create_topics");
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
}

fn producer(bootstrap: &str) -> FutureProducer {
    config(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("retry.backoff.ms", "50")
        // Retries (and metadata refreshes) back off up to 1 s by default
        // (KIP-580): the failover time measured would be the client's.
        .set("retry.backoff.max.ms", "100")
        .create()
        .expect("producer")
}

/// Sends `values[i]` to partition `i % partitions`; the acknowledged ones
/// as (value, partition, offset).
async fn send_all(producer: &FutureProducer, topic: &str, partitions: i32, values: &[String]) -> Vec<(String, i32)> {
    let pending: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let record = FutureRecord::to(topic).partition(i as i32 % partitions).key("k").payload(v);
            producer.send_result(record).map_err(|(e, _)| e).expect("queued")
        })
        .collect();
    let mut acknowledged = Vec::new();
    for (v, p) in values.iter().zip(pending) {
        let delivery = p.await.expect("delivery report").map_err(|(e, _)| e).expect("delivered");
        acknowledged.push((v.clone(), delivery.partition));
    }
    acknowledged
}

/// Every value of `topic`'s partitions read from their start through
/// `bootstrap`, per partition in order (until 4 s pass with nothing new).
fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<String>> {
    let consumer: BaseConsumer = config(bootstrap).set("group.id", "tiering-check").create().expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning).expect("offset");
    }
    consumer.assign(&assignment).expect("assign");
    let mut read: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(4) {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("message");
            let value = String::from_utf8(message.payload().expect("payload").to_vec()).expect("utf-8");
            read.entry(message.partition()).or_default().push(value);
            quiet = Instant::now();
        }
    }
    read
}

/// Waits until `broker`'s log has `needle` `times` times (at most `limit`).
fn wait_for_count(broker: &Broker, needle: &str, times: usize, limit: Duration) {
    let started = Instant::now();
    while broker.log().matches(needle).count() < times {
        assert!(
            started.elapsed() < limit,
            "{needle:?} logged fewer than {times} times in {limit:?}:\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `broker` logs a tail chunk (at debug level) ending at `end`.
fn wait_for_tail(broker: &Broker, end: u64) {
    let started = Instant::now();
    let needle = format!("end={end}");
    while !broker.log().lines().any(|l| l.contains("segment tail offloaded") && l.contains(&needle)) {
        assert!(started.elapsed() < Duration::from_secs(15), "no chunk up to {end}:\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_owner_lost_its_disk_is_restored_elsewhere_from_the_object_store() {
    let weed = Seaweed::start();
    let env = Seaweed::env();
    let mut cluster = Cluster::start_with_env(3, &weed.conf(1), &env);
    let bootstrap = (0..3).map(|i| cluster.kafka(i)).collect::<Vec<_>>().join(",");
    create_topic(&bootstrap, "tiered", 3).await;
    let producer = producer(&bootstrap);

    // Acknowledged, then left long enough to roll (1 s) and be offloaded.
    let early: Vec<String> = (0..300).map(|i| format!("early-{i}")).collect();
    let acknowledged_early = send_all(&producer, "tiered", 3, &early).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Acknowledged just before the crash: may not be tiered yet.
    let late: Vec<String> = (0..30).map(|i| format!("late-{i}")).collect();
    let acknowledged_late = send_all(&producer, "tiered", 3, &late).await;
    drop(producer);

    // Kill partition 0's owner (the broker that logged offloading it) and
    // delete its data: only the object store has its records now.
    let owner = (0..3)
        .find(|&i| {
            cluster.broker(i).log().contains("partition owned partition=persistent://public/default/tiered-partition-0")
        })
        .expect("an owner of partition 0");
    cluster.broker_mut(owner).kill(libc::SIGKILL);
    std::fs::remove_dir_all(cluster.broker(owner).data_dir().join("ledgers")).expect("remove its ledgers");
    let killed_at = Instant::now();
    let survivor = (owner + 1) % 3;
    let bootstrap = cluster.kafka(survivor);

    // Served again (by a survivor) within the session and 2 s: raw
    // produce probes through the leader a survivor names, every 50 ms
    // (a client's own backoff would be measured otherwise).
    while cluster.produce_once(survivor, "tiered", 0, "after").is_none() {
        assert!(killed_at.elapsed() < Duration::from_secs(20), "partition 0 not served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = killed_at.elapsed();
    eprintln!("kill -9 and a lost disk: partition 0 served again {took:?} after the kill (session {SESSION_MS} ms)");
    assert!(took < Duration::from_millis(SESSION_MS + 2000), "took {took:?}");

    let read = read_all(&bootstrap, "tiered", 3);
    let mut lost = 0;
    for p in 0..3 {
        let sent: Vec<&String> = acknowledged_early
            .iter()
            .chain(&acknowledged_late)
            .filter(|(_, partition)| *partition == p)
            .map(|(v, _)| v)
            .collect();
        let got: Vec<&String> = read.get(&p).map(|v| v.iter().filter(|v| *v != "after").collect()).unwrap_or_default();
        // What is read is what was acknowledged, in order, from the start:
        // nothing twice, no gap; only a suffix can be missing.
        assert_eq!(&sent[..got.len()], &got[..], "partition {p}: not a prefix of what was acknowledged");
        let early_in_p = acknowledged_early.iter().filter(|(_, partition)| *partition == p).count();
        assert!(got.len() >= early_in_p, "partition {p}: {} of {early_in_p} tiered records read", got.len());
        lost += sent.len() - got.len();
    }
    eprintln!("acknowledged records lost with the disk: {lost} (of {} sent in the last second)", late.len());
    assert!(lost <= late.len(), "{lost} lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tiering_a_graceful_stop_hands_every_acknowledged_record_over_once() {
    let weed = Seaweed::start();
    let env = Seaweed::env();
    // A long interval: what moves is what the stop itself uploads.
    let mut cluster = Cluster::start_with_env(3, &weed.conf(600), &env);
    let bootstrap = (0..3).map(|i| cluster.kafka(i)).collect::<Vec<_>>().join(",");
    create_topic(&bootstrap, "handover", 6).await;
    let producer = producer(&bootstrap);
    let first: Vec<String> = (0..600).map(|i| format!("r{i}")).collect();
    let mut acknowledged = send_all(&producer, "handover", 6, &first).await;

    let stopped = 0;
    let broker = cluster.brokers[stopped].take().expect("running");
    let stopping = std::thread::spawn(move || broker.terminate());
    let rest: Vec<String> = (600..1800).map(|i| format!("r{i}")).collect();
    acknowledged.extend(send_all(&producer, "handover", 6, &rest).await);
    let exit = stopping.join().expect("terminate");
    assert!(exit.status.success(), "{}", exit.log);
    assert!(exit.log.contains("tiered storage flushed for the handover failed=0"), "{}", exit.log);

    let read = read_all(&cluster.kafka(1), "handover", 6);
    let mut seen = BTreeSet::new();
    for values in read.values() {
        for v in values {
            assert!(seen.insert(v.clone()), "{v} stored twice");
        }
    }
    let missing: Vec<&String> = acknowledged.iter().map(|(v, _)| v).filter(|v| !seen.contains(*v)).collect();
    assert!(missing.is_empty(), "{} acknowledged records missing: {missing:?}", missing.len());
    eprintln!("graceful stop with tiering: {} acknowledged, all read back once", acknowledged.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_broker_that_lost_its_ledgers_restores_them_and_an_unreachable_store_costs_producers_nothing() {
    let weed = Seaweed::start();
    let conf = format!("{}logLevel=info,polyport_host::tiering=debug\n", weed.conf(1));
    let broker = Broker::configure(&conf, &[&kafka_library()]);
    let mut broker = broker.envs(&Seaweed::env()).start();
    let bootstrap = format!("127.0.0.1:{}", broker.kafka_port);
    let values: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
    send_all(&producer(&bootstrap), "solo", 1, &values).await;
    wait_for_tail(&broker, 200);

    // kill -9 and lose the ledgers; the manifest (in the embedded
    // metadata store) and the bucket remain.
    broker.kill(libc::SIGKILL);
    std::fs::remove_dir_all(broker.data_dir().join("ledgers")).expect("remove ledgers");
    let broker = broker.restart();
    let read = read_all(&bootstrap, "solo", 1);
    assert_eq!(read.get(&0).cloned().unwrap_or_default(), values, "restored from the object store");
    assert!(broker.log().contains("local data made to agree with the tiered log"), "{}", broker.log());
    drop(broker);

    // A store nobody listens on: producers see nothing of it.
    let conf = format!(
        "managedLedgerOffloadDriver=aws-s3\ns3ManagedLedgerOffloadBucket=polyport\n\
         s3ManagedLedgerOffloadServiceEndpoint=http://127.0.0.1:{}\nmanagedLedgerOffloadIntervalSeconds=1\n",
        free_port()
    );
    let broker = Broker::configure(&conf, &[&kafka_library()]);
    let broker = broker.envs(&Seaweed::env()).start();
    let bootstrap = format!("127.0.0.1:{}", broker.kafka_port);
    let started = Instant::now();
    let acknowledged = send_all(&producer(&bootstrap), "unreachable", 1, &values).await;
    assert_eq!(acknowledged.len(), values.len());
    eprintln!("200 records acknowledged in {:?} with the store unreachable", started.elapsed());
    wait_for_count(&broker, "offload failed; local data is kept", 1, Duration::from_secs(30));
    assert_eq!(read_all(&bootstrap, "unreachable", 1).get(&0).cloned().unwrap_or_default(), values);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_gets_a_partition_back_drops_the_tail_only_it_had_and_takes_what_others_wrote() {
    let weed = Seaweed::start();
    let env = Seaweed::env();
    // Chunks every 3 s, logged: A is killed just after one.
    let conf = format!("{}logLevel=info,polyport_host::tiering=debug\n", weed.conf(3));
    let mut cluster = Cluster::start_with_env(2, &conf, &env);
    let bootstrap = (0..2).map(|i| cluster.kafka(i)).collect::<Vec<_>>().join(",");
    create_topic(&bootstrap, "back", 1).await;
    let early: Vec<String> = (0..100).map(|i| format!("early-{i}")).collect();
    send_all(&producer(&bootstrap), "back", 1, &early).await;
    let a = (0..2)
        .find(|&i| {
            cluster.broker(i).log().contains("partition owned partition=persistent://public/default/back-partition-0")
        })
        .expect("an owner");
    let b = 1 - a;
    wait_for_tail(cluster.broker(a), 100);
    let only_a: Vec<String> = (0..50).map(|i| format!("only-a-{i}")).collect();
    send_all(&producer(&bootstrap), "back", 1, &only_a).await;

    // A dies (its disk kept) before its next chunk; B restores what was
    // uploaded and goes on.
    cluster.broker_mut(a).kill(libc::SIGKILL);
    let by_b: Vec<String> = (0..50).map(|i| format!("by-b-{i}")).collect();
    send_all(&producer(&cluster.kafka(b)), "back", 1, &by_b).await;
    // B stops gracefully (uploading everything); A comes back, alone.
    let exit = cluster.brokers[b].take().expect("running").terminate();
    assert!(exit.log.contains("local data made to agree with the tiered log"), "B restored:\n{}", exit.log);
    let restarted = cluster.brokers[a].take().expect("kept").restart();
    let read = read_all(&format!("127.0.0.1:{}", restarted.kafka_port), "back", 1);
    let got = read.get(&0).cloned().unwrap_or_default();
    let expected: Vec<String> = early.iter().chain(&by_b).cloned().collect();
    assert_eq!(got, expected, "the log is what B served: A's own tail is gone\n{}", restarted.log());
    assert!(restarted.log().contains("local data made to agree with the tiered log"), "{}", restarted.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pulsar_subscription_keeps_its_position_when_its_partition_moves_with_a_lost_disk() {
    use futures::TryStreamExt;
    use pulsar::{consumer::InitialPosition, Consumer, ConsumerOptions, Pulsar, SubType, TokioExecutor};
    let weed = Seaweed::start();
    let env = Seaweed::env();
    let mut cluster = Cluster::start_with_env(3, &weed.conf(1), &env);
    let topic = "persistent://public/default/subscribed";
    let pulsar: Pulsar<_> = Pulsar::builder(cluster.pulsar(0), TokioExecutor).build().await.expect("connects");
    let mut producer = pulsar.producer().with_topic(topic).build().await.expect("producer");
    for i in 0..100 {
        let sent = producer.create_message().with_content(format!("m{i}").into_bytes()).send_non_blocking();
        sent.await.expect("send").await.expect("receipt");
    }
    // Retried: until the killed owner's lease expires, lookups name it.
    let subscribe = |pulsar: Pulsar<TokioExecutor>| async move {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let built: Result<Consumer<Vec<u8>, _>, _> = pulsar
                .consumer()
                .with_topic(topic)
                .with_subscription("moving-sub")
                .with_subscription_type(SubType::Exclusive)
                // Latest: where it resumes can only come from the stored cursor.
                .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Latest))
                .build()
                .await;
            match built {
                Ok(consumer) => return consumer,
                Err(e) => {
                    if Instant::now() > deadline {
                        eprintln!("no consumer within 15 s: {e}");
                        std::future::pending::<()>().await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let mut consumer: Consumer<Vec<u8>, _> = pulsar
        .consumer()
        .with_topic(topic)
        .with_subscription("moving-sub")
        .with_subscription_type(SubType::Exclusive)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build()
        .await
        .expect("consumer");
    for i in 0..40 {
        let next = tokio::time::timeout(Duration::from_secs(10), consumer.try_next()).await;
        let message = next.expect("a message within 10 s").expect("receive").expect("a message");
        assert_eq!(message.payload.data, format!("m{i}").into_bytes());
        consumer.ack(&message).await.expect("ack");
    }
    let _ = consumer.close().await;
    drop(consumer);
    drop(producer);
    // The cursor and the records reach the stores within a second or two.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let owner = (0..3)
        .find(|&i| cluster.broker(i).log().contains(&format!("partition owned partition={topic} ")))
        .expect("an owner");
    cluster.broker_mut(owner).kill(libc::SIGKILL);
    std::fs::remove_dir_all(cluster.broker(owner).data_dir().join("ledgers")).expect("remove its ledgers");
    let survivor = (owner + 1) % 3;
    // pulsar-rs keeps retrying the address a lookup gave it: look up once
    // the killed owner's lease has expired.
    tokio::time::sleep(Duration::from_millis(SESSION_MS + 500)).await;
    let pulsar: Pulsar<_> =
        Pulsar::builder(cluster.pulsar(survivor), TokioExecutor).build().await.expect("connects to a survivor");
    let mut consumer = tokio::time::timeout(Duration::from_secs(20), subscribe(pulsar)).await.unwrap_or_else(|_| {
        panic!(
            "no consumer; survivors' logs:\n{}\n{}",
            cluster.broker(survivor).log(),
            cluster.broker((owner + 2) % 3).log()
        )
    });
    for i in 40..100 {
        let next = tokio::time::timeout(Duration::from_secs(20), consumer.try_next()).await;
        let message = next.expect("a message within 20 s").expect("receive").expect("a message");
        assert_eq!(message.payload.data, format!("m{i}").into_bytes(), "resumes after the last acknowledged one");
        consumer.ack(&message).await.expect("ack");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_segments_are_read_from_the_bucket_once_their_local_copies_go_and_a_lost_disk_restores_only_the_tail() {
    let weed = Seaweed::start();
    // 1 MB segments, deleted locally as soon as they are tiered.
    let conf = format!("{}managedLedgerMaxSizePerLedgerMbytes=1\nmanagedLedgerOffloadDeletionLagMs=0\n", weed.conf(1));
    let broker = Broker::configure(&conf, &[&kafka_library()]);
    let mut broker = broker.envs(&Seaweed::env()).start();
    let bootstrap = format!("127.0.0.1:{}", broker.kafka_port);
    let values: Vec<String> = (0..3000).map(|i| format!("{i:05}-{}", "x".repeat(1000))).collect();
    send_all(&producer(&bootstrap), "lazy", 1, &values).await;
    wait_for_count(&broker, "local copies of tiered segments deleted", 1, Duration::from_secs(20));

    let read = read_all(&bootstrap, "lazy", 1);
    assert!(read.get(&0) == Some(&values), "all 3000 records, in order, the oldest from the bucket");
    assert!(broker.log().contains("remote segment fetched"), "{}", broker.log());

    // A lost disk: the restore downloads the tail only; older segments
    // come from the bucket when read.
    broker.kill(libc::SIGKILL);
    std::fs::remove_dir_all(broker.data_dir().join("ledgers")).expect("remove ledgers");
    let broker = broker.restart();
    let read = read_all(&bootstrap, "lazy", 1);
    assert!(read.get(&0) == Some(&values), "all 3000 records after the restore");
    let log = broker.log();
    assert!(log.contains("tiered segments attached"), "{log}");
    let attached = log.lines().find(|l| l.contains("tiered segments attached")).unwrap_or_default();
    let restored = log.lines().find(|l| l.contains("local data made to agree")).unwrap_or_default();
    eprintln!(
        "{} remote segment fetches; at the restore: {} | {}",
        log.matches("remote segment fetched").count(),
        attached.split("attached=").nth(1).unwrap_or_default(),
        restored.split("removed=").nth(1).unwrap_or_default()
    );
}
