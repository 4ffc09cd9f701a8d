//! The consumer-group coordinator: OffsetCommit throughput and latency through
//! the real host with `libkafka.so` loaded, then the start-up replay of the
//! committed offsets by a second broker on the same data directory.
//!
//! Each OffsetCommit commits one partition offset (generation -1, no member:
//! a standalone consumer), so every request is one record appended to the
//! system topic `__consumer_offsets`; a commit is answered once that append is
//! durable and the group's cursor is mirrored. The connections of one case
//! commit one request at a time each; concurrent commits share appends.
//!
//! The commits run in a child process (this binary again, with its data
//! directory in BENCH_GROUPS_PHASE_DIR), which stops its broker and exits;
//! the parent then starts the second broker on that directory and times how
//! long until every group's offsets are served (and checked) again.
//!
//! Run: `make bench-groups` (builds libkafka.so in release first).
//! Knobs: BENCH_SECS (per case, default 3).

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context};
use bytes::{Bytes, BytesMut};
use kafka_protocol::{
    messages::{
        create_topics_request::CreatableTopic,
        list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
        offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
        offset_fetch_request::OffsetFetchRequestGroup,
        ApiKey, CreateTopicsRequest, CreateTopicsResponse, GroupId, ListOffsetsRequest, ListOffsetsResponse,
        OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, RequestHeader,
        ResponseHeader, TopicName,
    },
    protocol::{Decodable, Encodable, HeaderVersion, StrBytes},
};
use polyport_handler_api::LogLevel;
use polyport_host::{config::BrokerConfig, Broker};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{oneshot, Barrier},
    task::JoinHandle,
};

const TOPIC: &str = "bench-groups";
const PARTITIONS: i32 = 8;
/// The coordinator's system topic under the default kafkaMetadataTenant/Namespace.
const OFFSETS_TOPIC: &str = "public/__kafka/__consumer_offsets";
/// offsetsTopicNumPartitions (the coordinator's default).
const OFFSETS_PARTITIONS: i32 = 8;
/// Set for the child process that runs the commit phase: its data directory.
const PHASE_DIR: &str = "BENCH_GROUPS_PHASE_DIR";
/// The commit phase's results, next to the data directory.
const RESULTS: &str = "commits.txt";

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// One Kafka connection: a request at a time, correlation ids checked.
struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, correlation: 0 })
    }

    async fn call<Q: Encodable + HeaderVersion, R: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Q,
    ) -> anyhow::Result<R> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("bench-groups")));
        let mut out = BytesMut::from(&[0u8; 4][..]); // size, filled in below
        header.encode(&mut out, key.request_header_version(version))?;
        body.encode(&mut out, version)?;
        let size = i32::try_from(out.len() - 4)?.to_be_bytes();
        out[..4].copy_from_slice(&size);
        self.stream.write_all(&out).await?;
        let size = usize::try_from(self.stream.read_i32().await?)?;
        let mut frame = vec![0u8; size];
        self.stream.read_exact(&mut frame).await?;
        let mut frame = Bytes::from(frame);
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))?;
        ensure!(header.correlation_id == self.correlation, "{key:?}: response to another request");
        R::decode(&mut frame, version)
    }
}

/// A broker served in this process, stopped by `stop`.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    served: JoinHandle<()>,
}

/// The real host, handler loaded from a protocols directory (as boundary.rs),
/// with its data under `dir` so that a second broker can replay it.
async fn start_plugin(library: &Path, dir: &Path) -> anyhow::Result<Running> {
    let protocols = dir.join("protocols");
    std::fs::create_dir_all(&protocols)?;
    std::fs::copy(library, protocols.join("libkafka.so"))?;
    let entries = [
        ("messagingProtocols", "kafka".to_owned()),
        ("protocolHandlerDirectory", protocols.display().to_string()),
        ("dataDirectory", dir.join("data").display().to_string()),
        ("kafkaListeners", "PLAINTEXT://127.0.0.1:0".to_owned()),
        ("brokerServicePort", String::new()),
        ("webServicePort", "0".to_owned()),
        ("groupInitialRebalanceDelayMs", "0".to_owned()),
    ];
    let config = BrokerConfig::from_entries(entries.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())?;
    let broker = Broker::start(config, LogLevel::Warn).await?;
    let addr = broker.local_addrs().first().map(|(_, _, a)| *a).context("no listener")?;
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(broker.serve(async move {
        let _ = stopped.await;
    }));
    Ok(Running { addr, stop, served })
}

fn commit_request(group: &str, partition: i32, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default().with_group_id(GroupId(s(group))).with_generation_id_or_member_epoch(-1).with_topics(
        vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)])],
    )
}

/// One commit; any error code other than 0 fails the benchmark.
async fn commit(conn: &mut Conn, group: &str, partition: i32, offset: i64) -> anyhow::Result<()> {
    let response: OffsetCommitResponse =
        conn.call(ApiKey::OffsetCommit, 8, &commit_request(group, partition, offset)).await?;
    let codes: Vec<i16> = response.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect();
    if codes != [0] {
        bail!("OffsetCommit {group}/{partition} at {offset}: error codes {codes:?}");
    }
    Ok(())
}

/// (group, partition) -> the last offset each connection committed to it:
/// one of them is what the group must hold.
type Expected = HashMap<(String, i32), Vec<i64>>;

/// What one case measured.
struct Outcome {
    commits: u64,
    per_sec: f64,
    /// Per-commit latencies in µs, sorted.
    latencies: Vec<u32>,
    /// The last offset of each connection.
    last: Expected,
}

/// `connections` clients, connection i committing partition i % 8 of group
/// `g-{i % groups}`, one request at a time, for `secs` after a warm-up commit.
async fn run_case(
    addr: SocketAddr,
    connections: usize,
    groups: usize,
    secs: u64,
    offsets: &Arc<AtomicI64>,
) -> anyhow::Result<Outcome> {
    // The clock starts when every connection is open and its group exists.
    let barrier = Arc::new(Barrier::new(connections + 1));
    let mut tasks = Vec::new();
    for i in 0..connections {
        let (barrier, offsets) = (Arc::clone(&barrier), Arc::clone(offsets));
        let (group, partition) = (format!("g-{}", i % groups), i as i32 % PARTITIONS);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            let mut offset = offsets.fetch_add(1, Ordering::Relaxed);
            commit(&mut conn, &group, partition, offset).await?;
            barrier.wait().await;
            let deadline = Instant::now() + Duration::from_secs(secs);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                // Offsets only grow, across connections and cases.
                offset = offsets.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                commit(&mut conn, &group, partition, offset).await?;
                latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            anyhow::Ok((group, partition, offset, latencies))
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut outcome = Outcome { commits: 0, per_sec: 0.0, latencies: Vec::new(), last: HashMap::new() };
    for task in tasks {
        let (group, partition, offset, latencies) = task.await??;
        outcome.commits += latencies.len() as u64 + 1;
        outcome.latencies.extend(latencies);
        outcome.last.entry((group, partition)).or_default().push(offset);
    }
    outcome.per_sec = outcome.latencies.len() as f64 / started.elapsed().as_secs_f64();
    outcome.latencies.sort_unstable();
    Ok(outcome)
}

fn percentile(sorted: &[u32], q: f64) -> u32 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or(0)
}

async fn create_topic(addr: SocketAddr) -> anyhow::Result<()> {
    let mut conn = Conn::connect(addr).await?;
    let request = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_num_partitions(PARTITIONS)
        .with_replication_factor(1)]);
    let response: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &request).await?;
    for t in &response.topics {
        ensure!(t.error_code == 0, "CreateTopics {}: error {} {:?}", t.name.as_str(), t.error_code, t.error_message);
    }
    Ok(())
}

/// Records in the system topic's log (what a restart replays), summed over
/// its partitions: latest minus earliest offset. Snapshots truncate it.
async fn system_topic_records(addr: SocketAddr) -> anyhow::Result<i64> {
    let mut conn = Conn::connect(addr).await?;
    let mut total = 0;
    for (timestamp, sign) in [(-1i64, 1i64), (-2, -1)] {
        let partitions = (0..OFFSETS_PARTITIONS)
            .map(|p| ListOffsetsPartition::default().with_partition_index(p).with_timestamp(timestamp))
            .collect();
        let request =
            ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(s(OFFSETS_TOPIC)))
                .with_partitions(partitions)]);
        let response: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 7, &request).await?;
        for p in response.topics.iter().flat_map(|t| &t.partitions) {
            ensure!(p.error_code == 0, "ListOffsets {OFFSETS_TOPIC}-{}: error {}", p.partition_index, p.error_code);
            total += sign * p.offset;
        }
    }
    Ok(total)
}

/// Fetches every group's offsets in one OffsetFetch v8 (the coordinator
/// answers once each group's partition has replayed) and checks each is the
/// last offset some connection committed to it.
async fn verify_offsets(addr: SocketAddr, expected: &Expected) -> anyhow::Result<()> {
    let mut conn = Conn::connect(addr).await?;
    let mut groups: Vec<&String> = expected.keys().map(|(g, _)| g).collect();
    groups.sort();
    groups.dedup();
    let request = OffsetFetchRequest::default().with_groups(
        groups
            .iter()
            .map(|g| OffsetFetchRequestGroup::default().with_group_id(GroupId(s(g))).with_topics(None))
            .collect(),
    );
    let response: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 8, &request).await?;
    let mut checked = 0;
    for group in &response.groups {
        ensure!(group.error_code == 0, "OffsetFetch {}: error {}", group.group_id.as_str(), group.error_code);
        for p in group.topics.iter().filter(|t| t.name.as_str() == TOPIC).flat_map(|t| &t.partitions) {
            let key = (group.group_id.to_string(), p.partition_index);
            let candidates = expected.get(&key).map_or(&[][..], Vec::as_slice);
            ensure!(
                p.error_code == 0 && candidates.contains(&p.committed_offset),
                "after restart {key:?} is at {} (error {}), expected one of {candidates:?}",
                p.committed_offset,
                p.error_code
            );
            checked += 1;
        }
    }
    ensure!(checked == expected.len(), "after restart {checked} of {} offsets found", expected.len());
    Ok(())
}

/// The commit phase's results for the replay phase: a line `total records`,
/// then `group partition offset...` per (group, partition) committed.
fn save(path: &Path, total: u64, records: i64, expected: &Expected) -> anyhow::Result<()> {
    let mut text = format!("{total} {records}\n");
    for ((group, partition), offsets) in expected {
        let offsets: Vec<String> = offsets.iter().map(i64::to_string).collect();
        text.push_str(&format!("{group} {partition} {}\n", offsets.join(" ")));
    }
    Ok(std::fs::write(path, text)?)
}

fn load(path: &Path) -> anyhow::Result<(u64, i64, Expected)> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let mut first = lines.next().context("empty results")?.split(' ');
    let total = first.next().context("no total")?.parse()?;
    let records = first.next().context("no record count")?.parse()?;
    let mut expected = HashMap::new();
    for line in lines {
        let mut words = line.split(' ');
        let group = words.next().context("no group")?.to_owned();
        let partition = words.next().context("no partition")?.parse()?;
        let offsets = words.map(str::parse).collect::<Result<Vec<i64>, _>>()?;
        expected.insert((group, partition), offsets);
    }
    Ok((total, records, expected))
}

/// Runs the cases against a broker on `dir`, stops it and saves the results.
async fn commit_phase(library: &Path, dir: &Path, secs: u64) -> anyhow::Result<()> {
    let broker = start_plugin(library, dir).await?;
    create_topic(broker.addr).await?;
    println!("groups benchmark: OffsetCommit of one offset per request, {secs} s per case");
    println!("{:>5} {:>6} {:>10} {:>8} {:>8}", "conns", "groups", "commits/s", "p50 µs", "p99 µs");
    let offsets = Arc::new(AtomicI64::new(0));
    let mut expected = HashMap::new();
    let mut total = 0;
    for (connections, groups) in [(1, 1), (16, 1), (16, 16), (64, 64)] {
        let outcome = run_case(broker.addr, connections, groups, secs, &offsets).await?;
        let (p50, p99) = (percentile(&outcome.latencies, 0.50), percentile(&outcome.latencies, 0.99));
        println!("{connections:>5} {groups:>6} {:>10.0} {p50:>8} {p99:>8}", outcome.per_sec);
        total += outcome.commits;
        // Cases run one after another: a later case's commits replace an earlier one's.
        expected.extend(outcome.last);
    }
    let records = system_topic_records(broker.addr).await?;
    broker.stop.send(()).ok().context("the broker stopped on its own")?;
    broker.served.await?;
    save(&dir.join(RESULTS), total, records, &expected)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = env_u64("BENCH_SECS", 3);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let library = root.join("target/release/libkafka.so");
    if !library.exists() {
        bail!("{} is missing: run `make bench-groups`", library.display());
    }
    if let Some(dir) = std::env::var_os(PHASE_DIR) {
        return commit_phase(&library, Path::new(&dir), secs).await;
    }
    // The commit phase runs in a child process: a broker stopped in-process
    // keeps its metadata store open (redb's lock stays held), so a second
    // broker on the same data directory can only start once that process exited.
    let dir = tempfile::tempdir()?;
    let status = std::process::Command::new(std::env::current_exe()?).env(PHASE_DIR, dir.path()).status()?;
    ensure!(status.success(), "the commit phase failed: {status}");
    let (total, records, expected) = load(&dir.path().join(RESULTS))?;

    // Start-up replay: a second broker on the same data directory; OffsetFetch
    // waits while the coordinator partitions replay the system topic.
    let started = Instant::now();
    let broker = start_plugin(&library, dir.path()).await?;
    let start_ms = started.elapsed().as_secs_f64() * 1e3;
    verify_offsets(broker.addr, &expected).await?;
    let replayed_ms = started.elapsed().as_secs_f64() * 1e3;
    let groups = expected.keys().map(|(g, _)| g).collect::<std::collections::HashSet<_>>().len();
    println!("replay: {total} commits made, {records} records left in {OFFSETS_TOPIC} (snapshots truncate it)");
    println!(
        "restart: Broker::start {start_ms:.0} ms; the {} offsets of {groups} groups fetched and verified \
         {replayed_ms:.0} ms after the start began",
        expected.len()
    );
    broker.stop.send(()).ok().context("the second broker stopped on its own")?;
    broker.served.await?;
    Ok(())
}
