//! The broker process: start-up, configuration errors, handler discovery,
//! shutdown. Every test runs the real `broker` binary.

use std::{process::Command, time::Duration};

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use polyport_tests::{free_port, kafka::KafkaConn, kafka_library, Broker};

#[test]
fn kcat_lists_broker_zero_and_sigterm_exits_zero() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let out = Command::new("kcat")
        .args(["-b", &format!("127.0.0.1:{}", broker.kafka_port), "-L", "-m", "5"])
        .output()
        .expect("kcat is installed (.ci/run installs it)");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "kcat failed: {}\n{}", String::from_utf8_lossy(&out.stderr), broker.log());
    assert!(
        listing.contains(&format!("broker 0 at 127.0.0.1:{} (controller)", broker.kafka_port)),
        "kcat -L output:\n{listing}"
    );

    let exit = broker.terminate();
    assert!(exit.status.success(), "exit status {}:\n{}", exit.status, exit.log);
    assert!(exit.elapsed < Duration::from_secs(5), "took {:?}", exit.elapsed);
    assert!(exit.log.contains("broker stopped"), "{}", exit.log);
}

#[test]
fn sigint_with_an_open_kafka_connection_exits_before_the_grace_period() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let c = conn.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let _: ApiVersionsResponse = conn.receive(ApiKey::ApiVersions, 3, c);
    // The connection stays open: the handler's close() must end it, well
    // before brokerShutdownTimeoutMs (4 s in tests).
    let exit = broker.stop_with(libc::SIGINT);
    assert!(exit.status.success(), "exit status {}:\n{}", exit.status, exit.log);
    assert!(exit.elapsed < Duration::from_secs(3), "took {:?}:\n{}", exit.elapsed, exit.log);
    assert!(conn.is_closed_by_broker());
}

#[test]
fn requested_protocol_not_found_exits_2_listing_what_was_found() {
    let exit = Broker::configure("messagingProtocols=nosuch", &[&kafka_library()]).run_to_exit();
    assert_eq!(exit.status.code(), Some(2), "{}", exit.log);
    assert!(exit.elapsed < Duration::from_secs(10));
    assert!(exit.log.contains("requested protocol \"nosuch\""), "{}", exit.log);
    assert!(exit.log.contains("protocols found: kafka (libkafka.so)"), "{}", exit.log);
}

#[test]
fn a_garbage_library_is_a_warning_and_the_broker_starts() {
    let broker = Broker::configure("", &[&kafka_library()]);
    std::fs::write(broker.protocols_dir().join("libjunk.so"), b"\x7fELF but not really").expect("write");
    let broker = broker.start();
    let log = broker.log();
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("libjunk.so: not a loadable library"), "{log}");
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let c = conn.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let _: ApiVersionsResponse = conn.receive(ApiKey::ApiVersions, 3, c);
}

#[test]
fn a_garbage_library_is_named_when_the_requested_protocol_is_missing() {
    let broker = Broker::configure("messagingProtocols=kafka,mqtt", &[&kafka_library()]);
    std::fs::write(broker.protocols_dir().join("libmqtt.so"), b"garbage").expect("write");
    let exit = broker.run_to_exit();
    assert_eq!(exit.status.code(), Some(2), "{}", exit.log);
    assert!(exit.log.contains("requested protocol \"mqtt\""), "{}", exit.log);
    assert!(exit.log.contains("library libmqtt.so failed to load: not a loadable library"), "{}", exit.log);
}

#[test]
fn a_wrong_host_value_exits_2_naming_key_value_and_expectation() {
    let exit = Broker::configure("brokerServicePort=sixty", &[&kafka_library()]).run_to_exit();
    assert_eq!(exit.status.code(), Some(2), "{}", exit.log);
    assert!(exit.log.contains("brokerServicePort=\"sixty\": expected a TCP port number"), "{}", exit.log);
}

#[test]
fn a_wrong_handler_value_exits_2_naming_the_key() {
    let exit = Broker::configure("kafkaListeners=localhost-9092", &[&kafka_library()]).run_to_exit();
    assert_eq!(exit.status.code(), Some(2), "{}", exit.log);
    assert!(exit.log.contains("protocol handler kafka (libkafka.so): initialize failed"), "{}", exit.log);
    assert!(exit.log.contains("invalid value for kafkaListeners: \"localhost-9092\""), "{}", exit.log);
}

#[test]
fn a_wrong_kafka_handler_value_exits_2_naming_the_key() {
    for (line, wanted) in [
        ("kafkaMessageTimestampType=BrokerTime", "invalid value for kafkaMessageTimestampType: \"BrokerTime\""),
        ("groupMaxSessionTimeoutMs=1000", "invalid value for groupMaxSessionTimeoutMs: \"1000\""),
        ("offsetsTopicNumPartitions=0", "invalid value for offsetsTopicNumPartitions: \"0\""),
        ("kafkaMetadataNamespace=a/b", "invalid value for kafkaMetadataNamespace: \"a/b\""),
    ] {
        let exit = Broker::configure(line, &[&kafka_library()]).run_to_exit();
        assert_eq!(exit.status.code(), Some(2), "{line}: {}", exit.log);
        assert!(exit.log.contains(wanted), "{line}: {}", exit.log);
    }
}

#[test]
fn an_unknown_key_is_a_warning() {
    let broker = Broker::configure("kafkaListners=typo", &[&kafka_library()]).start();
    let log = broker.log();
    assert!(log.contains("configuration keys not used by the host or any loaded handler"), "{log}");
    assert!(log.contains("kafkaListners"), "{log}");
}

#[test]
fn environment_overrides_the_file() {
    let port = free_port();
    let broker = Broker::configure("", &[&kafka_library()])
        .env("POLYPORT_KAFKALISTENERS", &format!("PLAINTEXT://127.0.0.1:{port}"))
        .start();
    assert!(broker.log().contains(&format!("127.0.0.1:{port}")), "{}", broker.log());
    let mut conn = KafkaConn::connect(port);
    let c = conn.send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    let _: ApiVersionsResponse = conn.receive(ApiKey::ApiVersions, 0, c);
}

#[test]
fn an_address_in_use_exits_2_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let exit =
        Broker::configure(&format!("kafkaListeners=PLAINTEXT://127.0.0.1:{port}"), &[&kafka_library()]).run_to_exit();
    assert_eq!(exit.status.code(), Some(2), "{}", exit.log);
    assert!(exit.log.contains(&format!("cannot bind 127.0.0.1:{port}")), "{}", exit.log);
}
