//! Storage through the handler ABI, on the real binary: the out-of-tree
//! `line` handler appends, reads and acknowledges through the host services.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use polyport_tests::{free_port, workspace_root, Broker};

fn line_handler() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let target = workspace_root().join("target").join("out-of-tree");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "--manifest-path"])
            .arg(workspace_root().join("examples/line-handler/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("cargo runs");
        assert!(status.success());
        target.join("debug").join("libline_handler.so")
    })
}

struct Line {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Line {
    fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        Self { reader: BufReader::new(stream.try_clone().expect("clone")), writer: stream }
    }

    fn ask(&mut self, command: &str) -> String {
        self.writer.write_all(format!("{command}\n").as_bytes()).expect("write");
        let mut reply = String::new();
        self.reader.read_line(&mut reply).expect("reply");
        reply.trim_end().to_owned()
    }
}

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
        let offset = line.ask(&format!("PUB orders {word}"));
        assert_eq!(offset, i.to_string(), "offsets are dense");
        expected.push(word);
    }
    assert_eq!(line.ask("SUB orders audit"), "0 150");
    assert_eq!(line.ask("ACK orders audit 42"), "42 108");
    std::thread::sleep(Duration::from_millis(300)); // past the cursor flush interval
    broker.kill(libc::SIGKILL);

    let broker = broker.restart();
    let mut line = Line::connect(port);
    assert_eq!(line.ask("RANGE orders"), "0 150");
    let got = line.ask("GET orders 0 1000");
    let words: Vec<&str> = got.split(' ').collect();
    assert_eq!(words.len(), 150);
    for (i, (w, e)) in words.iter().zip(&expected).enumerate() {
        assert_eq!(*w, format!("{i}={e}"));
    }
    assert_eq!(line.ask("CURSORS orders"), "audit:42:108", "the cursor survived kill -9");
    assert_eq!(line.ask("PUB orders after"), "150", "appends continue densely after the restart");
    // Pulsar message ids and offsets address the same messages, across segments.
    let id = line.ask("MSGID orders 120");
    assert_eq!(line.ask(&format!("OFFSET orders {id}")), "120");
    assert!(broker.log().contains("ledger opened"), "{}", broker.log());
}

#[test]
fn topics_and_bad_input_get_precise_errors() {
    let port = free_port();
    let broker = broker(port, "allowAutoTopicCreation=false").start();
    let mut line = Line::connect(port);
    assert_eq!(line.ask("PUB missing hello"), "ERR not_found topic persistent://public/default/missing does not exist");
    assert_eq!(line.ask("CREATE parts 3"), "created");
    assert_eq!(line.ask("CREATE parts 3"), "ERR already_exists topic persistent://public/default/parts already exists");
    assert_eq!(line.ask("PUB parts-partition-2 a"), "0");
    assert!(line
        .ask("PUB parts-partition-3 a")
        .starts_with("ERR invalid_argument persistent://public/default/parts has 3 partitions"));
    assert!(line
        .ask("PUB parts a")
        .starts_with("ERR invalid_argument persistent://public/default/parts is partitioned"));
    assert!(line.ask("PUB a/b/c/d x").starts_with("ERR invalid_argument invalid topic name"));
    assert_eq!(line.ask("GET parts-partition-2 5 10"), "ERR out_of_range offset 5 is outside the log of persistent://public/default/parts-partition-2: valid offsets are 0 to 1 (end exclusive)");
    assert_eq!(line.ask("TOPICS public/default"), "persistent://public/default/parts:3");
    assert_eq!(line.ask("DELETE parts"), "deleted");
    assert_eq!(line.ask("TOPICS public/default"), "");
    assert!(line.ask("TOPICS nope/nope").starts_with("ERR not_found namespace nope/nope"));
    drop(broker);
}

#[test]
fn a_corrupt_topic_is_refused_and_the_rest_of_the_broker_serves() {
    let port = free_port();
    let mut broker = broker(port, "").start();
    let mut line = Line::connect(port);
    let filler = "y".repeat(100_000);
    for i in 0..30 {
        line.ask(&format!("PUB bad m{i}-{filler}"));
        line.ask(&format!("PUB good m{i}"));
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
    let reply = line.ask("GET bad 0 1");
    assert!(reply.starts_with("ERR corrupt topic persistent://public/default/bad: ledger"), "{reply}");
    assert!(reply.contains("00000000000000000001.log at byte 64: CRC mismatch inside a sealed segment"), "{reply}");
    assert_eq!(line.ask("GET good 0 2"), "0=m0 1=m1", "other topics serve");
    assert_eq!(line.ask("PUB good more"), "30");
    assert!(broker.log().contains("topic refused"), "{}", broker.log());
}
