//! Limits on what clients may hold: connections (in all, and per client
//! address) for every listener, the host's and the handlers' alike; and,
//! per Pulsar connection, producers, consumers and bytes queued. Each is a
//! broker.conf key with a default (docs/configuration.md, "Limits"), so that
//! the broker's memory is bounded by its configuration, not by its clients.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits read from broker.conf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `brokerMaxConnections`: connections at once, every listener together (0: no limit).
    pub max_connections: usize,
    /// `brokerMaxConnectionsPerIp`: connections at once from one address (0: no limit).
    pub max_connections_per_ip: usize,
    /// `maxProducersPerConnection`: producers one Pulsar connection may open.
    pub max_producers_per_connection: usize,
    /// `maxConsumersPerConnection`: consumers one Pulsar connection may open.
    pub max_consumers_per_connection: usize,
    /// `maxPendingBytesPerConnection`: bytes of SENDs a Pulsar connection may
    /// have waiting to be stored, and (apart) bytes of frames waiting to be
    /// written to it.
    pub max_pending_bytes_per_connection: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 0,
            max_producers_per_connection: 10_000,
            max_consumers_per_connection: 10_000,
            max_pending_bytes_per_connection: 64 << 20,
        }
    }
}

/// The connections open now, counted against the limits.
#[derive(Debug)]
pub struct Connections {
    config: LimitsConfig,
    total: Option<Arc<Semaphore>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `brokerMaxConnections` reached.
    #[error("{0} connections are open (brokerMaxConnections)")]
    Total(usize),
    /// `brokerMaxConnectionsPerIp` reached for this address.
    #[error("{0} connections are open from this address (brokerMaxConnectionsPerIp)")]
    PerIp(usize),
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted {
    _total: Option<OwnedSemaphorePermit>,
    per_ip: Option<(Arc<Connections>, IpAddr)>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some((connections, ip)) = self.per_ip.take() {
            let mut per_ip = connections.lock();
            if let Some(n) = per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

impl Connections {
    /// Counts connections against `config`.
    pub fn new(config: LimitsConfig) -> Arc<Self> {
        let total = (config.max_connections > 0).then(|| Arc::new(Semaphore::new(config.max_connections)));
        Arc::new(Self { config, total, per_ip: Mutex::new(HashMap::new()) })
    }

    /// The limits.
    pub fn config(&self) -> LimitsConfig {
        self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a connection from `peer`, or says which limit it would pass.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refused> {
        let total = match &self.total {
            Some(total) => {
                Some(Arc::clone(total).try_acquire_owned().map_err(|_| Refused::Total(self.config.max_connections))?)
            }
            None => None,
        };
        let per_ip = if self.config.max_connections_per_ip > 0 {
            let mut per_ip = self.lock();
            let n = per_ip.entry(peer).or_insert(0);
            if *n >= self.config.max_connections_per_ip {
                return Err(Refused::PerIp(*n));
            }
            *n += 1;
            Some((Arc::clone(self), peer))
        } else {
            None
        };
        Ok(Admitted { _total: total, per_ip })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_in_all_and_per_address_and_freed_on_drop() {
        let config = LimitsConfig { max_connections: 3, max_connections_per_ip: 2, ..LimitsConfig::default() };
        let connections = Connections::new(config);
        let (a, b) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));
        let a1 = connections.admit(a).expect("first");
        let _a2 = connections.admit(a).expect("second");
        assert_eq!(connections.admit(a).expect_err("over the limit"), Refused::PerIp(2));
        let _b1 = connections.admit(b).expect("another address");
        assert_eq!(connections.admit(b).expect_err("over the limit"), Refused::Total(3));
        drop(a1);
        let _a3 = connections.admit(a).expect("a place freed");
    }

    #[test]
    fn zero_means_no_limit() {
        let config = LimitsConfig { max_connections: 0, max_connections_per_ip: 0, ..LimitsConfig::default() };
        let connections = Connections::new(config);
        let held: Vec<_> =
            (0..100).map(|_| connections.admit(IpAddr::from([127, 0, 0, 1])).expect("admitted")).collect();
        assert_eq!(held.len(), 100);
    }
}
