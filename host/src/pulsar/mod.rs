//! The Pulsar binary protocol, built into the host, on `brokerServicePort`.
//!
//! Pulsar clients connect, look topics up (this broker is authoritative for
//! all of them), produce and subscribe. Messages are stored as Pulsar wrote
//! them: one ledger entry per SEND, holding `[metadata size][MessageMetadata]
//! [payload]` with format tag [`FORMAT_PULSAR`]; a MESSAGE sends those bytes
//! back with a fresh checksum. Subscriptions are the ledger's cursors, so a
//! Pulsar subscription and a Kafka group sit side by side in cursor listings.
//!
//! - [`frame`]: framing, size limit and CRC32C;
//! - [`connection`]: one client connection and its commands;
//! - [`subscription`]: one subscription's task (consumers, permits, acks,
//!   redelivery).

pub mod chunks;
pub mod connection;
pub mod consume;
pub mod convert;
pub mod delayed;
pub mod frame;
pub mod listeners;
pub mod lookup;
pub mod outbox;
pub mod produce;
pub mod producers;
pub mod proto;
pub mod schema;
pub mod subscription;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use crate::pulsar::proto::{command_subscribe::SubType, MessageIdData, ServerError};
use polyport_ledger::{InitialPosition, ManagedLedger, Position};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use self::subscription::{ConsumerLink, SubCommand, Subscription};
use crate::{
    convert::Converters,
    topics::{TopicName, Topics},
};

/// The format tag of entries written by Pulsar producers.
pub const FORMAT_PULSAR: u16 = 2;

/// What every Pulsar connection shares.
pub struct PulsarService {
    /// Topics and their ledgers.
    pub topics: Arc<Topics>,
    /// Converters of entries other protocols wrote.
    pub converters: Arc<Converters>,
    /// `maxMessageSize`.
    pub max_message_size: usize,
    /// `pulsar://<advertisedAddress>:<port>`, the answer to lookups when no
    /// listener is declared.
    pub service_url: String,
    /// `pulsar+ssl://<advertisedAddress>:<brokerServicePortTls>`, if TLS is on.
    pub service_url_tls: Option<String>,
    /// The authentication providers (CONNECT's credentials).
    pub authenticator: Arc<crate::security::Authenticator>,
    /// Who may do what.
    pub authorizer: Arc<crate::security::authz::Authorizer>,
    /// The protocol's configuration.
    pub config: PulsarConfig,
    cluster: String,
    /// What each connection may hold.
    pub limits: crate::limits::LimitsConfig,
    producers: AtomicU64,
    connections: AtomicU64,
    /// Every topic's producers and their access modes.
    pub producers_by_topic: Arc<producers::Registry>,
    /// Running subscriptions by (topic partition, subscription name).
    subscriptions: Mutex<HashMap<(String, String), mpsc::Sender<SubCommand>>>,
    /// The broker's metrics (storage latency).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for PulsarService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulsarService").field("service_url", &self.service_url).finish_non_exhaustive()
    }
}

/// Authentication and authorization, as connections ask them.
#[derive(Debug, Clone)]
pub struct Security {
    /// CONNECT's credentials.
    pub authenticator: Arc<crate::security::Authenticator>,
    /// Who may do what.
    pub authorizer: Arc<crate::security::authz::Authorizer>,
}

/// Where clients reach the Pulsar protocol.
#[derive(Debug, Clone, Copy)]
pub struct Advertised<'a> {
    /// `advertisedAddress`.
    pub host: &'a str,
    /// The plaintext port bound.
    pub port: u16,
    /// The TLS port bound, if any.
    pub tls_port: Option<u16>,
}

impl PulsarService {
    /// The service for clients that reach it at `address`.
    // Each argument is a service shared with other parts of the broker.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topics: Arc<Topics>,
        converters: Arc<Converters>,
        config: PulsarConfig,
        address: &Advertised<'_>,
        cluster: &str,
        limits: crate::limits::LimitsConfig,
        security: Security,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let Security { authenticator, authorizer } = security;
        Self {
            converters,
            max_message_size: config.max_message_size,
            service_url: format!("pulsar://{}:{}", address.host, address.port),
            service_url_tls: address.tls_port.map(|port| format!("pulsar+ssl://{}:{port}", address.host)),
            authenticator,
            authorizer,
            config,
            cluster: cluster.to_owned(),
            limits,
            producers: AtomicU64::new(0),
            producers_by_topic: producers::Registry::new(Arc::clone(&topics)),
            topics,
            connections: AtomicU64::new(0),
            subscriptions: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The running subscription `name` of the partition `ledger` names, if any.
    pub fn running_subscription(&self, ledger: &str, name: &str) -> Option<mpsc::Sender<SubCommand>> {
        self.lock().get(&(ledger.to_owned(), name.to_owned())).filter(|s| !s.is_closed()).cloned()
    }

    /// The running subscriptions of the partition `ledger` names.
    pub fn running_subscriptions(&self, ledger: &str) -> Vec<(String, mpsc::Sender<SubCommand>)> {
        self.lock()
            .iter()
            .filter(|((l, _), s)| l == ledger && !s.is_closed())
            .map(|((_, n), s)| (n.clone(), s.clone()))
            .collect()
    }

    /// A name for a producer that did not choose one (Pulsar's `<cluster>-<n>` style).
    pub fn producer_name(&self) -> String {
        format!("{}-{}", self.cluster, self.producers.fetch_add(1, Ordering::Relaxed))
    }

    /// Adds a consumer to subscription `name` of `ledger`, starting the
    /// subscription's task (and its cursor at `initial`) if it is not running.
    pub async fn attach(
        &self,
        ledger: &Arc<ManagedLedger>,
        name: &str,
        sub_type: SubType,
        durable: bool,
        initial: InitialPosition,
        link: ConsumerLink,
    ) -> Result<mpsc::Sender<SubCommand>, (ServerError, String)> {
        let key = (ledger.name().to_owned(), name.to_owned());
        let mut link = link;
        // A task that is just ending (its last reader left) refuses the
        // consumer; its sender is closed then, so the second attempt starts
        // a new one.
        for _ in 0..2 {
            let sender = self
                .subscription(ledger, &key, sub_type, durable, initial)
                .await
                .map_err(|e| (ServerError::PersistenceError, e))?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            match sender.send(SubCommand::Add(link, tx)).await {
                Ok(()) => {
                    return match rx.await {
                        Ok(Ok(())) => Ok(sender),
                        Ok(Err(refusal)) => Err(refusal),
                        Err(_) => Err((ServerError::ServiceNotReady, format!("subscription {name} closed"))),
                    }
                }
                Err(mpsc::error::SendError(SubCommand::Add(l, _))) => link = l,
                Err(_) => break,
            }
        }
        Err((ServerError::ServiceNotReady, format!("subscription {name} is closing; retry")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), mpsc::Sender<SubCommand>>> {
        self.subscriptions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn subscription(
        &self,
        ledger: &Arc<ManagedLedger>,
        key: &(String, String),
        sub_type: SubType,
        durable: bool,
        initial: InitialPosition,
    ) -> Result<mpsc::Sender<SubCommand>, String> {
        if let Some(sender) = self.lock().get(key).filter(|s| !s.is_closed()).cloned() {
            return Ok(sender);
        }
        let cursor = &key.1;
        ledger.open_cursor(cursor, durable, initial).await.map_err(|e| e.to_string())?;
        let mut registry = self.lock();
        if let Some(sender) = registry.get(key).filter(|s| !s.is_closed()).cloned() {
            return Ok(sender);
        }
        let (tx, rx) = mpsc::channel(1024);
        registry.insert(key.clone(), tx.clone());
        let delayed = self.config.delayed_delivery.then_some(self.config.delayed_delivery_tick);
        drop(registry);
        // In a cluster, served only while this broker owns the topic.
        let served: Option<subscription::Served> = match (self.topics.cluster(), TopicName::parse(&key.0)) {
            (Some(_), Ok(name)) => {
                let topics = Arc::clone(&self.topics);
                Some(Box::new(move || topics.serves(&name)))
            }
            _ => None,
        };
        let task = Subscription::new(
            Arc::clone(ledger),
            served,
            cursor.clone(),
            sub_type,
            durable,
            Arc::clone(&self.converters),
            delayed,
        );
        let span = tracing::info_span!("subscription", topic = %key.0, name = %key.1);
        tokio::spawn(task.run(rx).instrument(span));
        Ok(tx)
    }
}

/// Where a consumer given `start_message_id` begins: at the entry holding
/// that message, for subscriptions and readers alike (a reader that starts
/// after it gets the entry again; the client drops what comes before).
pub async fn start_position(ledger: &ManagedLedger, id: &MessageIdData) -> InitialPosition {
    if subscription::is_earliest(id) {
        return InitialPosition::Earliest;
    }
    if subscription::is_latest(id) {
        return InitialPosition::Latest;
    }
    let position = Position { ledger_id: id.ledger_id, entry_id: id.entry_id, batch_index: 0 };
    ledger.nonblocking(move |l| l.offset_of(position)).await.map_or(InitialPosition::Earliest, InitialPosition::Offset)
}

/// Binds `bind:port` for the Pulsar protocol.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| format!("Pulsar protocol (brokerServicePort): cannot bind {addr}: {e}"))
}

/// Accepts until `shutdown`; connections are tracked by `connections`.
pub async fn accept_loop(
    service: Arc<PulsarService>,
    listener: TcpListener,
    tls: Option<crate::security::tls::Tls>,
    admitted: Arc<crate::limits::Connections>,
    shutdown: CancellationToken,
    connections: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(place) = crate::server::admit(&admitted, "pulsar", peer) else { continue };
                let _ = stream.set_nodelay(true);
                let id = service.connections.fetch_add(1, Ordering::Relaxed);
                let span = tracing::info_span!("conn", protocol = "pulsar", tls = tls.is_some(), %peer);
                let service = Arc::clone(&service);
                let stop = shutdown.clone();
                let tls = tls.clone();
                connections.spawn(
                    async move {
                        let serve = async {
                            match tls {
                                None => connection::serve(service, id, stream, None).await,
                                Some(tls) => match tls.accept(stream).await {
                                    Ok(accepted) => {
                                        let role = accepted.role;
                                        connection::serve(service, id, accepted.stream, role).await
                                    }
                                    Err(reason) => tracing::info!("connection closed: {reason}"),
                                },
                            }
                        };
                        tokio::select! {
                            () = serve => {}
                            // Pulsar clients reconnect; nothing is in flight that an answer would save.
                            () = stop.cancelled() => {}
                        }
                        drop(place);
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "Pulsar accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The Pulsar protocol's configuration.
#[derive(Debug, Clone)]
pub struct PulsarConfig {
    /// `maxMessageSize`: announced in CONNECTED; a frame may carry it plus
    /// [`frame::FRAME_PADDING`].
    pub max_message_size: usize,
    /// `advertisedListeners` and `internalListenerName`.
    pub listeners: listeners::Listeners,
    /// `delayedDeliveryEnabled`.
    pub delayed_delivery: bool,
    /// `delayedDeliveryTickTimeMillis`: the least time between two wake-ups
    /// of a subscription's delayed-delivery timer.
    pub delayed_delivery_tick: Duration,
}

impl Default for PulsarConfig {
    fn default() -> Self {
        Self {
            max_message_size: 5 << 20,
            listeners: listeners::Listeners::default(),
            delayed_delivery: true,
            delayed_delivery_tick: Duration::from_secs(1),
        }
    }
}
