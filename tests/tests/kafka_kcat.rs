//! kcat (Debian's, on librdkafka 2.0) produces and consumes through the real
//! broker: keys, headers, offsets, and a restart in between.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use polyport_tests::{
    kafka::{batch_headers, fetch_raw, KafkaConn},
    kafka_library, Broker,
};

fn kcat(args: &[&str], input: Option<&str>) -> String {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed (.ci/run installs it)");
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("kcat ran");
    assert!(out.status.success(), "kcat {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kcat_round_trip_survives_a_restart() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let bootstrap = format!("127.0.0.1:{}", broker.kafka_port);
    let lines: String = (0..50).map(|i| format!("key{i}:value {i}\n")).collect();
    kcat(&["-b", &bootstrap, "-P", "-t", "lines", "-K:", "-H", "source=kcat"], Some(&lines));
    let consume = |from: &str, count: &str| {
        kcat(&["-b", &bootstrap, "-C", "-t", "lines", "-o", from, "-c", count, "-e", "-f", "%o|%k|%s|%h\n"], None)
    };
    let out = consume("beginning", "50");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 50, "{out}");
    assert_eq!(rows[7], "7|key7|value 7|source=kcat");
    assert_eq!(
        consume("42", "3").lines().collect::<Vec<_>>(),
        vec!["42|key42|value 42|source=kcat", "43|key43|value 43|source=kcat", "44|key44|value 44|source=kcat"]
    );
    let mut broker = broker;
    broker.kill(libc::SIGTERM);
    let broker = broker.restart();
    let bootstrap = format!("127.0.0.1:{}", broker.kafka_port);
    kcat(&["-b", &bootstrap, "-P", "-t", "lines", "-K:"], Some("after:restart\n"));
    let out = kcat(&["-b", &bootstrap, "-C", "-t", "lines", "-o", "-2", "-e", "-f", "%o|%k|%s\n"], None);
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["49|key49|value 49", "50|after|restart"]);
}

/// librdkafka before 2.10 enables compression only if the broker lists
/// Produce v0 (issue 12): Debian's kcat (librdkafka 2.0) must store gzip
/// batches, not silently uncompressed ones.
#[test]
fn old_kcat_compresses_what_it_is_told_to() {
    let broker = Broker::configure("", &[&kafka_library()]).start();
    let bootstrap = format!("127.0.0.1:{}", broker.kafka_port);
    let record = "x".repeat(100);
    let lines: String = (0..2000).map(|_| format!("{record}\n")).collect();
    kcat(&["-b", &bootstrap, "-P", "-t", "zipped", "-p", "0", "-z", "gzip", "-X", "linger.ms=200"], Some(&lines));
    let mut conn = KafkaConn::connect(broker.kafka_port);
    let (error, records) = fetch_raw(&mut conn, "zipped", 0, 0, 16 << 20);
    assert_eq!(error, 0);
    let batches = batch_headers(records.clone());
    assert!(!batches.is_empty());
    for (base, attributes) in &batches {
        assert_eq!(attributes & 7, 1, "batch at {base} stored with codec {} (1 = gzip)", attributes & 7);
    }
    assert!(records.len() < 20_000, "2000 x 100 bytes took {} bytes", records.len());
    let out = kcat(&["-b", &bootstrap, "-C", "-t", "zipped", "-o", "1999", "-c", "1", "-e", "-f", "%o|%s\n"], None);
    assert_eq!(out, format!("1999|{record}\n"));
}
