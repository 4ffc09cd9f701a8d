//! The Pulsar protocol's throughput and the cost of cross-protocol reads.
//!
//! Starts the real host (with libkafka.so loaded, in release) and measures,
//! with 1 KiB messages:
//! 1. Pulsar produce (pulsar-rs, one producer, `WINDOW` sends in flight) and
//!    Pulsar consume (one exclusive consumer from the earliest message);
//! 2. a Pulsar consumer reading entries Kafka wrote (converted on the read)
//!    against one reading entries Pulsar wrote;
//! 3. Kafka fetches (raw Fetch requests, 1 MiB per fetch) reading entries
//!    Pulsar wrote (converted) against entries Kafka wrote (served as stored).
//!
//! Run: `make bench-pulsar`. Knob: BENCH_MESSAGES (default 50000).
//! The load generator runs in the same process and shares the 2 cores with
//! the broker: compare rows of one run, not absolute figures across machines.

use std::{net::SocketAddr, path::PathBuf, time::Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use futures::{stream::FuturesUnordered, StreamExt, TryStreamExt};
use indexmap::IndexMap;
use kafka_protocol::{
    messages::{
        fetch_request::{FetchPartition, FetchTopic},
        produce_request::{PartitionProduceData, TopicProduceData},
        ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
    },
    protocol::{Decodable, Encodable, HeaderVersion, StrBytes},
    records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType},
};
use polyport_handler_api::LogLevel;
use polyport_host::{config::BrokerConfig, Broker};
use pulsar::{consumer::InitialPosition, Consumer, ConsumerOptions, Pulsar, SubType, TokioExecutor};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const SIZE: usize = 1024;
/// Sends in flight: pulsar-rs answers SlowDown beyond its own queue.
const WINDOW: usize = 100;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Rate {
    messages: usize,
    secs: f64,
}

impl Rate {
    fn per_sec(&self) -> f64 {
        self.messages as f64 / self.secs
    }

    fn mb_per_sec(&self) -> f64 {
        self.per_sec() * SIZE as f64 / 1e6
    }
}

async fn start(library: &PathBuf) -> anyhow::Result<(SocketAddr, SocketAddr, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let protocols = dir.path().join("protocols");
    std::fs::create_dir_all(&protocols)?;
    std::fs::copy(library, protocols.join("libkafka.so"))?;
    let entries = [
        ("messagingProtocols", "kafka".to_owned()),
        ("protocolHandlerDirectory", protocols.display().to_string()),
        ("dataDirectory", dir.path().join("data").display().to_string()),
        ("kafkaListeners", "PLAINTEXT://127.0.0.1:0".to_owned()),
        ("brokerServicePort", "0".to_owned()),
        ("webServicePort", "0".to_owned()),
        ("bindAddress", "127.0.0.1".to_owned()),
    ];
    let config = BrokerConfig::from_entries(entries.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())?;
    let broker = Broker::start(config, LogLevel::Warn).await?;
    let addrs = broker.local_addrs();
    let kafka = addrs.iter().find(|(p, _, _)| p == "kafka").map(|(_, _, a)| *a).context("no Kafka listener")?;
    let pulsar = addrs.iter().find(|(p, _, _)| p == "pulsar").map(|(_, _, a)| *a).context("no Pulsar listener")?;
    tokio::spawn(broker.serve(std::future::pending()));
    Ok((kafka, pulsar, dir))
}

async fn pulsar_produce(client: &Pulsar<TokioExecutor>, topic: &str, n: usize) -> anyhow::Result<Rate> {
    let mut producer = client.producer().with_topic(topic).build().await?;
    let payload = vec![b'p'; SIZE];
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    for _ in 0..n {
        if in_flight.len() >= WINDOW {
            if let Some(receipt) = in_flight.next().await {
                receipt?;
            }
        }
        in_flight.push(producer.send_non_blocking(payload.clone()).await?);
    }
    while let Some(receipt) = in_flight.next().await {
        receipt?;
    }
    Ok(Rate { messages: n, secs: started.elapsed().as_secs_f64() })
}

async fn pulsar_consume(client: &Pulsar<TokioExecutor>, topic: &str, n: usize) -> anyhow::Result<Rate> {
    let mut consumer: Consumer<Vec<u8>, _> = client
        .consumer()
        .with_topic(topic)
        .with_subscription(format!("bench-{}", std::process::id()))
        .with_subscription_type(SubType::Exclusive)
        .with_options(
            ConsumerOptions::default().with_initial_position(InitialPosition::Earliest).with_receiver_queue_size(2000),
        )
        .build()
        .await?;
    let started = Instant::now();
    let mut seen = 0;
    while seen < n {
        let message = consumer.try_next().await?.context("the stream ended")?;
        seen += 1;
        if seen % 100 == 0 {
            consumer.cumulative_ack(&message).await?;
        }
    }
    Ok(Rate { messages: n, secs: started.elapsed().as_secs_f64() })
}

/// A Kafka connection speaking raw requests.
struct Kafka {
    stream: TcpStream,
    correlation: i32,
}

impl Kafka {
    async fn call<Req: Encodable + HeaderVersion, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Req,
    ) -> anyhow::Result<Resp> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation);
        let mut out = BytesMut::new();
        header.encode(&mut out, key.request_header_version(version))?;
        body.encode(&mut out, version)?;
        self.stream.write_all(&(out.len() as i32).to_be_bytes()).await?;
        self.stream.write_all(&out).await?;
        let size = usize::try_from(self.stream.read_i32().await?)?;
        let mut buf = vec![0u8; size];
        self.stream.read_exact(&mut buf).await?;
        let mut buf = Bytes::from(buf);
        ResponseHeader::decode(&mut buf, key.response_header_version(version))?;
        Resp::decode(&mut buf, version)
    }
}

async fn kafka_produce(kafka: &mut Kafka, topic: &str, n: usize) -> anyhow::Result<()> {
    let value = Bytes::from(vec![b'k'; SIZE]);
    for chunk in 0..n.div_ceil(100) {
        let records: Vec<Record> = (0..100.min(n - chunk * 100))
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: 1_700_000_000_000,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(value.clone()),
                headers: IndexMap::new(),
            })
            .collect();
        let mut batch = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut batch,
            &records,
            &RecordEncodeOptions { version: 2, compression: Compression::None },
        )?;
        let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.freeze()))]),
        ]);
        let response: ProduceResponse = kafka.call(ApiKey::Produce, 9, &request).await?;
        let code = response.responses[0].partition_responses[0].error_code;
        if code != 0 {
            bail!("produce to {topic}: error {code}");
        }
    }
    Ok(())
}

async fn kafka_fetch(kafka: &mut Kafka, topic: &str, n: usize) -> anyhow::Result<Rate> {
    let started = Instant::now();
    let mut offset = 0i64;
    while (offset as usize) < n {
        let request = FetchRequest::default().with_max_wait_ms(500).with_max_bytes(1 << 20).with_topics(vec![
            FetchTopic::default().with_topic(TopicName(StrBytes::from_string(topic.to_owned()))).with_partitions(vec![
                FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(1 << 20),
            ]),
        ]);
        let response: FetchResponse = kafka.call(ApiKey::Fetch, 12, &request).await?;
        let partition = &response.responses[0].partitions[0];
        if partition.error_code != 0 {
            bail!("fetch {topic}@{offset}: error {}", partition.error_code);
        }
        let mut records = partition.records.clone().unwrap_or_default();
        for set in RecordBatchDecoder::decode_all(&mut records)? {
            if let Some(last) = set.records.last() {
                offset = offset.max(last.offset + 1);
            }
        }
    }
    Ok(Rate { messages: n, secs: started.elapsed().as_secs_f64() })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = env_usize("BENCH_MESSAGES", 50_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let library = root.join("target/release/libkafka.so");
    if !library.exists() {
        bail!("{} is missing: run `make bench-pulsar`", library.display());
    }
    let (kafka_addr, pulsar_addr, _dir) = start(&library).await?;
    let client: Pulsar<_> = Pulsar::builder(format!("pulsar://{pulsar_addr}"), TokioExecutor).build().await?;
    let mut kafka = Kafka { stream: TcpStream::connect(kafka_addr).await?, correlation: 0 };
    kafka.stream.set_nodelay(true)?;

    println!("Pulsar protocol benchmark: {n} messages of {SIZE} B per row");
    let pulsar_topic = "persistent://public/default/bench-pulsar-written";
    let produce = pulsar_produce(&client, pulsar_topic, n).await?;
    println!(
        "{:<52} {:>10.0} msg/s {:>8.1} MB/s",
        "Pulsar produce (1 producer, 100 in flight)",
        produce.per_sec(),
        produce.mb_per_sec()
    );
    kafka_produce(&mut kafka, "bench-kafka-written", n).await?;
    let kafka_topic = "persistent://public/default/bench-kafka-written";

    let same = pulsar_consume(&client, pulsar_topic, n).await?;
    let cross = pulsar_consume(&client, kafka_topic, n).await?;
    println!(
        "{:<52} {:>10.0} msg/s {:>8.1} MB/s",
        "Pulsar consume, Pulsar-written entries",
        same.per_sec(),
        same.mb_per_sec()
    );
    println!(
        "{:<52} {:>10.0} msg/s {:>8.1} MB/s",
        "Pulsar consume, Kafka-written entries (converted)",
        cross.per_sec(),
        cross.mb_per_sec()
    );
    println!("  cross / same = {:.3}", cross.per_sec() / same.per_sec());

    let same = kafka_fetch(&mut kafka, "bench-kafka-written", n).await?;
    let cross = kafka_fetch(&mut kafka, "bench-pulsar-written", n).await?;
    println!(
        "{:<52} {:>10.0} msg/s {:>8.1} MB/s",
        "Kafka fetch, Kafka-written entries",
        same.per_sec(),
        same.mb_per_sec()
    );
    println!(
        "{:<52} {:>10.0} msg/s {:>8.1} MB/s",
        "Kafka fetch, Pulsar-written entries (converted)",
        cross.per_sec(),
        cross.mb_per_sec()
    );
    println!("  cross / same = {:.3}", cross.per_sec() / same.per_sec());
    Ok(())
}
