//! A cluster on loopback: one etcd and several brokers, each with its own
//! ports and data directory, sharing the etcd (`metadataStoreUrl`).

use std::{collections::BTreeMap, time::Duration};

use bytes::Bytes;
use kafka_protocol::{
    messages::{metadata_request::MetadataRequestTopic, ApiKey, MetadataRequest, MetadataResponse, TopicName},
    protocol::StrBytes,
};

use crate::{
    etcd::Etcd,
    free_port,
    kafka::{record_batch, try_produce, KafkaConn},
    kafka_library, Broker,
};

/// Metadata v12 for `topic` from the broker at `port`: (node id → Kafka
/// port of every broker listed, leader node id per partition); `None` if
/// the broker does not answer.
pub fn try_metadata(port: u16, topic: &str) -> Option<(BTreeMap<i32, i32>, Vec<i32>)> {
    let mut conn = KafkaConn::try_connect(port, Duration::from_secs(5))?;
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(topic.to_owned()))))
    ]));
    let c = conn.send(ApiKey::Metadata, 12, &request);
    let response: MetadataResponse = conn.try_receive(ApiKey::Metadata, 12, c)?;
    let brokers = response.brokers.iter().map(|b| (b.node_id.0, b.port)).collect();
    let mut partitions: Vec<(i32, i32)> =
        response.topics.first()?.partitions.iter().map(|p| (p.partition_index, p.leader_id.0)).collect();
    partitions.sort();
    Some((brokers, partitions.into_iter().map(|(_, leader)| leader).collect()))
}

/// The metadata session used by cluster tests: short, so that failover
/// tests finish quickly (the broker's default is 5 s).
pub const SESSION_MS: u64 = 2000;

/// One etcd and `brokers`.
pub struct Cluster {
    /// The brokers, in start order; a stopped one is `None`.
    pub brokers: Vec<Option<Broker>>,
    /// The etcd they share.
    pub etcd: Etcd,
}

impl Cluster {
    /// Starts etcd and `n` brokers with `conf` added to each one's
    /// configuration, and waits until every broker sees all of them.
    pub fn start(n: usize, conf: &str) -> Self {
        Self::start_with_env(n, conf, &[])
    }

    /// [`start`](Self::start), with environment variables for every broker.
    pub fn start_with_env(n: usize, conf: &str, env: &[(&str, &str)]) -> Self {
        let etcd = Etcd::start();
        let brokers = (0..n)
            .map(|_| {
                // A distinct webServicePort: it is part of the broker's id.
                let conf = format!(
                    "metadataStoreUrl={}\nmetadataStoreSessionTimeoutMillis={SESSION_MS}\nwebServicePort={}\n{conf}",
                    etcd.url(),
                    free_port()
                );
                let broker = Broker::configure(&conf, &[&kafka_library()]);
                Some(broker.envs(env).start())
            })
            .collect();
        let cluster = Self { brokers, etcd };
        // Registrations reach every broker's mirror by a watch.
        std::thread::sleep(Duration::from_millis(300));
        cluster
    }

    /// Broker `i`.
    pub fn broker(&self, i: usize) -> &Broker {
        self.brokers[i].as_ref().expect("broker running")
    }

    /// Broker `i`, mutably.
    pub fn broker_mut(&mut self, i: usize) -> &mut Broker {
        self.brokers[i].as_mut().expect("broker running")
    }

    /// `127.0.0.1:<kafka port>` of broker `i`.
    pub fn kafka(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.broker(i).kafka_port)
    }

    /// `pulsar://127.0.0.1:<port>` of broker `i`.
    pub fn pulsar(&self, i: usize) -> String {
        format!("pulsar://127.0.0.1:{}", self.broker(i).pulsar_port)
    }

    /// Produces one record to `partition` of `topic` through its leader as
    /// broker `via` names it (raw Kafka requests, no client backoff); the
    /// leader's Kafka port when acknowledged.
    pub fn produce_once(&self, via: usize, topic: &str, partition: usize, value: &str) -> Option<i32> {
        let (brokers, leaders) = try_metadata(self.broker(via).kafka_port, topic)?;
        let port = *brokers.get(leaders.get(partition)?)?;
        // Short: the leader named may be down or paused.
        let mut conn = KafkaConn::try_connect(u16::try_from(port).ok()?, Duration::from_millis(500))?;
        let batch = record_batch(&[Bytes::from(value.to_owned())], -1, -1, -1, 1_700_000_000_000).freeze();
        match try_produce(&mut conn, topic, i32::try_from(partition).ok()?, -1, batch) {
            Some((0, _)) => Some(port),
            _ => None,
        }
    }

    /// The index of the running broker with Kafka port `port`.
    pub fn by_kafka_port(&self, port: i32) -> Option<usize> {
        self.brokers.iter().position(|b| b.as_ref().is_some_and(|b| i32::from(b.kafka_port) == port))
    }
}
