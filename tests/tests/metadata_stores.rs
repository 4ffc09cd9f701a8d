//! The metadata stores: the conformance suite both stores pass (the
//! embedded one in its unit test, etcd here against a real etcd), and the
//! broker on etcd (`metadataStoreUrl`), including when etcd is not there.

use std::{sync::Arc, time::Duration};

use polyport_host::metadata::{conformance, EtcdStore, MetadataStore};
use polyport_tests::{etcd::Etcd, free_port, kafka::KafkaConn, kafka_library, Broker};

#[test]
fn etcd_passes_the_metadata_store_conformance_suite() {
    let etcd = Etcd::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime
        .block_on(EtcdStore::connect(&etcd.url(), Duration::from_secs(10), Duration::from_secs(5)))
        .expect("connect");
    // The store blocks its callers' threads on the runtime, as the broker's
    // blocking threads do: called from this plain thread.
    conformance::check(Arc::new(store) as Arc<dyn MetadataStore>, "/conformance/");
}

#[test]
fn a_broker_keeps_its_topics_in_etcd_and_finds_them_after_a_restart() {
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
    let etcd = Etcd::start();
    let conf =
        format!("metadataStoreUrl={}\ndefaultNumPartitions=3\nallowAutoTopicCreationType=partitioned", etcd.url());
    let mut broker = Broker::configure(&conf, &[&kafka_library()]).start();
    assert!(broker.log().contains("metadata store: etcd"), "{}", broker.log());
    let metadata = |port: u16| -> MetadataResponse {
        let mut kafka = KafkaConn::connect(port);
        let request = MetadataRequest::default().with_allow_auto_topic_creation(true).with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(
                kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_static_str("orders")),
            )),
        ]));
        let c = kafka.send(ApiKey::Metadata, 9, &request);
        kafka.receive(ApiKey::Metadata, 9, c)
    };
    let created = metadata(broker.kafka_port);
    assert_eq!(created.topics[0].error_code, 0);
    assert_eq!(created.topics[0].partitions.len(), 3);
    // The topic is a key in etcd, where Pulsar keeps it.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime
        .block_on(EtcdStore::connect(&etcd.url(), Duration::from_secs(10), Duration::from_secs(5)))
        .expect("connect");
    let keys = store.list("/admin/topics/").expect("list");
    assert!(keys.contains(&"/admin/topics/public/default/orders".to_owned()), "{keys:?}");
    broker.kill(libc::SIGKILL);
    // Restarted at once: its registration from before the crash (its
    // data directory's identity) is taken over, not waited out.
    let started = std::time::Instant::now();
    let broker = broker.restart();
    assert!(broker.log().contains("took over this broker's registration"), "{}", broker.log());
    assert!(started.elapsed() < Duration::from_secs(4), "restart took {:?}", started.elapsed());
    assert_eq!(metadata(broker.kafka_port).topics[0].partitions.len(), 3, "the topic came back from etcd");
}

#[test]
fn an_unreachable_etcd_stops_start_up_with_exit_2_naming_the_url() {
    let dead = free_port();
    let exit =
        Broker::configure(&format!("metadataStoreUrl=etcd:http://127.0.0.1:{dead}"), &[&kafka_library()]).run_to_exit();
    assert_eq!(exit.status.code(), Some(2), "{}", exit.log);
    assert!(
        exit.log.contains(&format!("metadataStoreUrl: etcd at etcd:http://127.0.0.1:{dead} does not answer")),
        "{}",
        exit.log
    );
    assert!(exit.elapsed < Duration::from_secs(12), "gave up after {:?}", exit.elapsed);
}

#[test]
fn a_metadata_store_url_that_is_not_etcd_is_a_configuration_error() {
    let exit = Broker::configure("metadataStoreUrl=zk:127.0.0.1:2181", &[&kafka_library()]).run_to_exit();
    assert_eq!(exit.status.code(), Some(2), "{}", exit.log);
    assert!(exit.log.contains("metadataStoreUrl"), "{}", exit.log);
    assert!(exit.log.contains("etcd:http://host:port"), "{}", exit.log);
}

/// etcd lost while the broker runs: open partitions go on serving; a
/// metadata change fails with a retriable error, and works again once etcd
/// is back.
#[test]
fn open_partitions_serve_while_etcd_is_down_and_metadata_changes_resume_when_it_returns() {
    use std::process::Command;
    let mut etcd = Etcd::start();
    let broker = Broker::configure(&format!("metadataStoreUrl={}", etcd.url()), &[&kafka_library()]).start();
    let bootstrap = format!("127.0.0.1:{}", broker.kafka_port);
    let produce = |topic: &str, text: &str| {
        let mut child = Command::new("kcat")
            .args(["-b", &bootstrap, "-P", "-t", topic, "-X", "message.timeout.ms=3000"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("kcat");
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
        child.wait().expect("kcat").success()
    };
    let consume = |topic: &str, count: usize| -> String {
        let out = Command::new("kcat")
            .args(["-b", &bootstrap, "-C", "-t", topic, "-o", "beginning", "-c", &count.to_string(), "-e", "-q"])
            .output()
            .expect("kcat");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(produce("steady", "one\n"));
    etcd.stop();
    assert!(produce("steady", "two\n"), "an open partition takes appends without etcd");
    assert_eq!(consume("steady", 2), "one\ntwo\n");
    assert!(!produce("fresh", "lost\n"), "creating a topic needs etcd: the producer gets an error");
    etcd.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !produce("fresh", "after\n") {
        assert!(std::time::Instant::now() < deadline, "metadata changes did not resume:\n{}", broker.log());
    }
    let got = consume("fresh", 1);
    assert!(got == "after\n" || got == "lost\n", "{got:?}");
}

/// A client of `etcd` (its runtime must outlive it: the store blocks on it).
fn client(etcd: &Etcd) -> (tokio::runtime::Runtime, EtcdStore) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime
        .block_on(EtcdStore::connect(&etcd.url(), Duration::from_secs(10), Duration::from_secs(5)))
        .expect("connect");
    (runtime, store)
}

fn registration(store: &EtcdStore, id: &str) -> Option<String> {
    let found = store.get(&format!("/loadbalance/brokers/{id}")).expect("get");
    found.map(|v| String::from_utf8_lossy(&v.value).into_owned())
}

#[test]
fn a_broker_registers_while_it_lives_and_unregisters_when_it_stops() {
    let etcd = Etcd::start();
    let web = free_port();
    let conf = format!(
        "metadataStoreUrl={}\nwebServicePort={web}\nmetadataStoreSessionTimeoutMillis=2000\nbindAddress=127.0.0.1",
        etcd.url()
    );
    let broker = Broker::configure(&conf, &[&kafka_library()]).start();
    let id = format!("127.0.0.1:{web}");
    let (_runtime, store) = client(&etcd);
    let data = registration(&store, &id).expect("registered");
    // What clients and other brokers need: the Pulsar URL and the Kafka listeners.
    assert!(data.contains(&format!("\"pulsarServiceUrl\":\"pulsar://127.0.0.1:{}\"", broker.pulsar_port)), "{data}");
    assert!(data.contains(&format!("127.0.0.1:{}", broker.kafka_port)), "{data}");
    assert!(data.contains("\"kafka\":"), "{data}");
    // A second broker with the same id waits out a session (the key might
    // be its own from before a crash), then is refused: the first lives.
    // (It binds another loopback address: on the same one, its admin port
    // would be refused first.)
    let exit = Broker::configure(&format!("{conf}\nbindAddress=127.0.0.2"), &[&kafka_library()]).run_to_exit();
    assert_eq!(exit.status.code(), Some(2), "{}", exit.log);
    assert!(exit.log.contains("waiting for it to expire"), "{}", exit.log);
    assert!(
        exit.log.contains(&format!("another live broker is registered as /loadbalance/brokers/{id}")),
        "{}",
        exit.log
    );
    // A graceful stop removes the registration at once.
    let exit = broker.terminate();
    assert!(exit.status.success(), "{}", exit.log);
    assert!(exit.log.contains("broker unregistered"), "{}", exit.log);
    assert_eq!(registration(&store, &id), None);
}

#[test]
fn a_killed_brokers_registration_expires_with_its_session() {
    let etcd = Etcd::start();
    let web = free_port();
    let conf = format!("metadataStoreUrl={}\nwebServicePort={web}\nmetadataStoreSessionTimeoutMillis=2000", etcd.url());
    let mut broker = Broker::configure(&conf, &[&kafka_library()]).start();
    let id = format!("127.0.0.1:{web}");
    let (_runtime, store) = client(&etcd);
    // Alive past several lease periods: the keep-alives hold it.
    std::thread::sleep(Duration::from_secs(5));
    assert!(registration(&store, &id).is_some(), "{}", broker.log());
    broker.kill(libc::SIGKILL);
    let killed = std::time::Instant::now();
    while registration(&store, &id).is_some() {
        assert!(killed.elapsed() < Duration::from_secs(4), "still registered 4 s after kill -9 (session 2 s)");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("registration gone {:?} after kill -9", killed.elapsed());
}

/// The ownership primitives, with two sessions standing for two brokers:
/// one owner per partition, epochs that grow with each new owner, a release
/// that cannot remove a later owner's claim, and the fence (an owner cut off
/// from etcd stops acknowledging before its lease can expire).
#[test]
fn one_owner_per_partition_epochs_grow_and_a_cut_off_owner_stops_acknowledging() {
    use polyport_host::{
        ownership::{Claimed, Ownership},
        topics::TopicName,
    };
    let mut etcd = Etcd::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let session = |ttl: u64| {
        let store =
            runtime.block_on(EtcdStore::connect(&etcd.url(), Duration::from_secs(10), Duration::from_secs(ttl)));
        Arc::new(store.expect("connect"))
    };
    let (a_store, b_store) = (session(5), session(5));
    let a = Ownership::new(Arc::clone(&a_store), "a:8080".into());
    let b = Ownership::new(Arc::clone(&b_store), "b:8080".into());
    let p0 = TopicName::parse("orders-partition-0").expect("name");
    let Claimed::Mine(first) = runtime.block_on(a.claim(&p0)).expect("claim") else { panic!("a claims first") };
    assert_eq!(runtime.block_on(b.claim(&p0)).expect("claim"), Claimed::Theirs(first.clone()));
    assert_eq!(runtime.block_on(a.claim(&p0)).expect("claim"), Claimed::Mine(first.clone()), "a claim is kept");
    // A graceful handover: a releases, b claims at a later epoch; a's stale
    // release cannot remove b's claim.
    assert!(runtime.block_on(a.release(&p0, first.epoch)).expect("release"));
    let Claimed::Mine(second) = runtime.block_on(b.claim(&p0)).expect("claim") else { panic!("b claims next") };
    assert!(second.epoch > first.epoch, "{second:?} after {first:?}");
    assert!(!runtime.block_on(a.release(&p0, first.epoch)).expect("release"), "an old epoch releases nothing");
    assert_eq!(runtime.block_on(a.claim(&p0)).expect("claim"), Claimed::Theirs(second.clone()));
    // b's session ends: its claims go with it.
    runtime.block_on(b_store.close_session()).expect("close");
    let Claimed::Mine(third) = runtime.block_on(a.claim(&p0)).expect("claim") else { panic!("a claims again") };
    assert!(third.epoch > second.epoch);

    // The fence: with etcd gone, a stops trusting its session before its
    // 2 s lease could expire on etcd's side (TTL minus a quarter, from the
    // last keep-alive that was answered).
    let c_store = session(2);
    let c = Ownership::new(Arc::clone(&c_store), "c:8080".into());
    std::thread::sleep(Duration::from_secs(3));
    assert!(c.may_acknowledge(), "kept alive past its TTL");
    etcd.stop();
    let stopped = std::time::Instant::now();
    while c.may_acknowledge() {
        // The lease lives 2 s from the last keep-alive etcd took, which was
        // before the stop: fenced within 2 s of it, by construction 1.5 s
        // after the last answered keep-alive was sent.
        assert!(
            stopped.elapsed() < Duration::from_secs(2),
            "still acknowledging {:?} after etcd went",
            stopped.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("fenced {:?} after etcd stopped (lease 2 s)", stopped.elapsed());
    etcd.restart();
}
