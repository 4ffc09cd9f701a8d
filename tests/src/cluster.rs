//! A cluster on loopback: one etcd and several brokers, each with its own
//! ports and data directory, sharing the etcd (`metadataStoreUrl`).

use std::time::Duration;

use crate::{etcd::Etcd, free_port, kafka_library, Broker};

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
                Some(env.iter().fold(broker, |b, (k, v)| b.env(k, v)).start())
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

    /// The index of the running broker with Kafka port `port`.
    pub fn by_kafka_port(&self, port: i32) -> Option<usize> {
        self.brokers.iter().position(|b| b.as_ref().is_some_and(|b| i32::from(b.kafka_port) == port))
    }
}
