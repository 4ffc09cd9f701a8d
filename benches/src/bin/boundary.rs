//! The cost of the handler boundary: the Kafka handler's request/response path
//! served (a) by the real host with `libkafka.so` loaded through handler-api
//! (dlopen, FFI connection, FFI futures), and (b) the same handler code linked
//! in-process and run on plain tokio sockets. Same client, same process, same
//! requests; rounds alternate A/B to spread the machine's drift over both.
//!
//! Run: `make bench-boundary` (builds libkafka.so in release first).
//! Knobs: BENCH_SECS (per run, default 1), BENCH_ROUNDS (default 9).

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use bytes::BytesMut;
use kafka_protocol::{
    messages::{ApiKey, ApiVersionsRequest, MetadataRequest, RequestHeader},
    protocol::{Encodable, HeaderVersion, StrBytes},
};
use polyport_handler_api::{Config, LogLevel};
use polyport_host::{config::BrokerConfig, Broker};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn frame<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, body: &R) -> anyhow::Result<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("bench")));
    let mut out = BytesMut::new();
    header.encode(&mut out, key.request_header_version(version))?;
    body.encode(&mut out, version)?;
    let mut framed = i32::try_from(out.len())?.to_be_bytes().to_vec();
    framed.extend_from_slice(&out);
    Ok(framed)
}

/// `connections` clients each sending `request` and reading the reply, one at
/// a time, for `secs`; returns requests per second.
async fn drive(addr: SocketAddr, request: Arc<Vec<u8>>, connections: usize, secs: u64) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (request, done) = (Arc::clone(&request), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut body = vec![0u8; 4096];
            let mut count = 0u64;
            while Instant::now() < deadline {
                stream.write_all(&request).await?;
                let size = usize::try_from(stream.read_i32().await?)?;
                if size > body.len() {
                    body.resize(size, 0);
                }
                stream.read_exact(&mut body[..size]).await?;
                count += 1;
            }
            done.fetch_add(count, Ordering::Relaxed);
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// (a) The real host, handler loaded from a protocols directory.
async fn start_plugin(library: &PathBuf) -> anyhow::Result<(SocketAddr, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let protocols = dir.path().join("protocols");
    std::fs::create_dir_all(&protocols)?;
    std::fs::copy(library, protocols.join("libkafka.so"))?;
    let entries = [
        ("messagingProtocols", "kafka".to_owned()),
        ("protocolHandlerDirectory", protocols.display().to_string()),
        ("dataDirectory", dir.path().join("data").display().to_string()),
        ("kafkaListeners", "PLAINTEXT://127.0.0.1:0".to_owned()),
        ("brokerServicePort", String::new()),
        ("webServicePort", "0".to_owned()),
    ];
    let config = BrokerConfig::from_entries(entries.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())?;
    let broker = Broker::start(config, LogLevel::Warn).await?;
    let addr = broker.local_addrs().first().map(|(_, _, a)| *a).context("no listener")?;
    tokio::spawn(broker.serve(std::future::pending()));
    Ok((addr, dir))
}

/// (b) The same handler code in-process on tokio sockets.
async fn start_in_process() -> anyhow::Result<SocketAddr> {
    let config = Config::new([("kafkaListeners".to_owned(), "PLAINTEXT://127.0.0.1:0".to_owned())]);
    let service = Arc::new(kafka::KafkaService::from_config(&config)?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            if let Ok(future) = service.serve("PLAINTEXT", &peer.to_string(), stream) {
                tokio::spawn(future);
            }
        }
    });
    Ok(addr)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = env_u64("BENCH_SECS", 1);
    let rounds = env_u64("BENCH_ROUNDS", 9).max(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let library = root.join("target/release/libkafka.so");
    if !library.exists() {
        bail!("{} is missing: run `make bench-boundary`", library.display());
    }
    let (plugin, _dir) = start_plugin(&library).await?;
    let native = start_in_process().await?;

    let workloads = [
        ("ApiVersions v3", Arc::new(frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())?)),
        ("Metadata v12", Arc::new(frame(ApiKey::Metadata, 12, &MetadataRequest::default())?)),
    ];
    println!("boundary benchmark: {rounds} rounds x {secs} s per run, alternating plugin/in-process");
    println!(
        "{:<16} {:>5} {:>14} {:>14} {:>8} {:>12}",
        "request", "conns", "plugin req/s", "in-proc req/s", "median", "ratio range"
    );
    for (name, request) in &workloads {
        for connections in [1usize, 32] {
            let (mut a, mut b, mut ratios) = (0.0, 0.0, Vec::new());
            for round in 0..rounds {
                // Alternate which side goes first so a drifting machine favours neither.
                let (x, y) = if round % 2 == 0 {
                    let x = drive(plugin, Arc::clone(request), connections, secs).await?;
                    (x, drive(native, Arc::clone(request), connections, secs).await?)
                } else {
                    let y = drive(native, Arc::clone(request), connections, secs).await?;
                    (drive(plugin, Arc::clone(request), connections, secs).await?, y)
                };
                a += x;
                b += y;
                ratios.push(x / y);
            }
            ratios.sort_by(f64::total_cmp);
            let (a, b) = (a / rounds as f64, b / rounds as f64);
            let (min, median, max) = (ratios[0], ratios[ratios.len() / 2], ratios[ratios.len() - 1]);
            println!("{name:<16} {connections:>5} {a:>14.0} {b:>14.0} {median:>8.3} {min:>6.3}-{max:.3}");
        }
    }
    println!("ratio = plugin / in-process throughput per round (median, min-max over rounds);");
    println!("the target is a median >= 0.95 (the boundary costs at most 5 %)");
    Ok(())
}
