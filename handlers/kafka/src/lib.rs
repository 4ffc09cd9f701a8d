//! The Kafka protocol handler: lets unchanged Kafka clients talk to Polyport.
//!
//! Built as `libkafka.so` and enabled with `messagingProtocols=kafka`. Requests
//! are decoded and encoded with the `kafka-protocol` crate; each API lives in
//! its own module under [`apis`].

pub mod acls;
pub mod admin;
pub mod alloc;
pub mod apis;
pub mod authz;
pub mod chunked;
pub mod cluster;
pub mod configs;
pub mod connection;
pub mod convert;
pub mod coordinator;
mod crc;
pub mod decompress;
pub mod errors;
pub mod idempotence;
pub mod listeners;
pub mod metrics;
pub mod order;
pub mod recompress;
pub mod records;
pub mod sasl;
pub mod session;
pub mod topics;
pub mod transactions;
pub mod txn_index;

/// Counts a client sends do not size memory (see [`alloc`]).
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

use std::sync::{Arc, OnceLock};

use polyport_handler_api::{
    export_handler, Config, Connection, ConnectionFuture, ErrorKind, HandlerError, Host, Listener, ProtocolHandler,
};
use tokio::sync::watch;

use crate::{apis::BrokerInfo, connection::Shared, listeners::KafkaListener, topics::TopicMapper};

/// A request that cannot be decoded or a response that cannot be encoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The request bytes do not follow the schema of their API and version.
    #[error("cannot decode request: {0}")]
    Decode(String),
    /// The response could not be encoded (a bug, or a value out of range).
    #[error("cannot encode response: {0}")]
    Encode(String),
    /// A produce with acks=0 failed: there is no response to carry the
    /// error, so the connection is closed and the producer refreshes its
    /// metadata, as Kafka does.
    #[error("produce with acks=0 failed ({0}); closing the connection so the producer refreshes its metadata")]
    Acks0Failed(String),
}

impl ProtocolError {
    fn decode(e: impl std::fmt::Display) -> Self {
        Self::Decode(e.to_string())
    }

    fn encode(e: impl std::fmt::Display) -> Self {
        Self::Encode(e.to_string())
    }
}

/// The keys this handler reads from broker.conf (besides the group
/// coordinator's, [`coordinator::CoordinatorConfig::KEYS`]).
pub const CONFIG_KEYS: &[&str] = &[
    "kafkaListeners",
    "kafkaAdvertisedListeners",
    "kafkaProtocolMap",
    "kafkaMaxRequestBytes",
    "kafkaTenant",
    "kafkaNamespace",
    "entryFormat",
    "kafkaMessageTimestampType",
    "kafkaAcceptAnyReplicationFactor",
    sasl::ALLOWED_MECHANISMS_KEY,
];

/// How produced record batches are stored (`entryFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFormat {
    /// As written: one entry per batch, served to Kafka readers as is (the fast path).
    Kafka,
    /// Converted to Pulsar's batch format at produce time (KoP's
    /// `entryFormat=pulsar`): Pulsar consumers read it natively, Kafka
    /// readers pay a conversion on every fetch.
    Pulsar,
}

/// Kafka's own default for `socket.request.max.bytes`.
const DEFAULT_MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

/// The handler's configuration and per-connection entry point, usable without
/// a host (the boundary benchmark runs it in-process).
#[derive(Debug)]
pub struct KafkaService {
    listeners: Vec<KafkaListener>,
    /// `saslAllowedMechanisms`.
    sasl_allowed: Vec<String>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    /// The host's `exposeTopicLevelMetricsInPrometheus`: traffic metrics per topic partition.
    topic_level_metrics: bool,
}

impl KafkaService {
    /// Reads and validates the Kafka keys.
    pub fn from_config(config: &Config) -> Result<Self, HandlerError> {
        let advertised = config.get("advertisedAddress").unwrap_or("127.0.0.1");
        let listeners = listeners::from_config(config, advertised)?;
        let sasl_allowed = sasl::allowed_mechanisms(config)?;
        let max_request_bytes =
            config.parse_or("kafkaMaxRequestBytes", DEFAULT_MAX_REQUEST_BYTES, "a number of bytes, at least 1024")?;
        if max_request_bytes < 1024 {
            return Err(HandlerError::config(
                "kafkaMaxRequestBytes",
                &max_request_bytes.to_string(),
                "a number of bytes, at least 1024",
            ));
        }
        let broker = BrokerInfo {
            cluster_id: config.get("clusterName").unwrap_or("standalone").to_owned(),
            // The host checks the value (true or false) and defaults to true.
            auto_create_topics: config.get("allowAutoTopicCreation") != Some("false"),
            default_partitions: config.parse_or("defaultNumPartitions", 1, "a number of partitions")?,
            any_replication_factor: match config.get("kafkaAcceptAnyReplicationFactor").unwrap_or("false") {
                "true" => true,
                "false" => false,
                other => return Err(HandlerError::config("kafkaAcceptAnyReplicationFactor", other, "true or false")),
            },
        };
        let tenant = config.get("kafkaTenant").unwrap_or("public");
        let namespace = config.get("kafkaNamespace").unwrap_or("default");
        let valid =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid(tenant) {
            return Err(HandlerError::config("kafkaTenant", tenant, "a tenant name (letters, digits, - _ .)"));
        }
        if !valid(namespace) {
            return Err(HandlerError::config("kafkaNamespace", namespace, "a namespace name (letters, digits, - _ .)"));
        }
        let entry_format = match config.get("entryFormat").unwrap_or("kafka") {
            "kafka" => EntryFormat::Kafka,
            "pulsar" => EntryFormat::Pulsar,
            other => {
                return Err(HandlerError::config(
                    "entryFormat",
                    other,
                    "kafka (batches stored as written) or pulsar (converted at produce time)",
                ))
            }
        };
        let log_append_time = match config.get("kafkaMessageTimestampType").unwrap_or("CreateTime") {
            "CreateTime" => false,
            "LogAppendTime" => true,
            other => {
                return Err(HandlerError::config(
                    "kafkaMessageTimestampType",
                    other,
                    "CreateTime (records keep their producer's timestamps) or LogAppendTime (the broker's time \
                     when it stores them)",
                ))
            }
        };
        // Handlers have no clock of their own before start; the system clock is
        // fine for seeds (it is not a timer).
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        // The host's limit for an entry; a record batch is one entry.
        let max_message_bytes = config.parse_or("maxMessageSize", 5 * 1024 * 1024, "a number of bytes")?;
        let coordinator = coordinator::Coordinator::new(coordinator::CoordinatorConfig::from_config(config)?);
        Ok(Self {
            listeners,
            sasl_allowed,
            shared: Arc::new(Shared {
                broker,
                max_request_bytes,
                max_message_bytes,
                topics: TopicMapper::new(format!("{tenant}/{namespace}")),
                host: OnceLock::new(),
                // Handlers have no clock of their own before start; the system
                // clock is fine for a seed (it is not a timer).
                producer_ids: apis::init_producer_id::ProducerIds::new(now_ms),
                // Seeded by the clock so a client's session id from an earlier run is unlikely to match.
                fetch_sessions: apis::fetch_sessions::FetchSessions::default(),
                coordinator,
                entry_format,
                log_append_time,
                sequences: Arc::default(),
                txn_index: Arc::new(txn_index::TxnIndex::default()),
                sasl: OnceLock::new(),
                authorizer: OnceLock::new(),
                security: OnceLock::new(),
                metrics: OnceLock::new(),
            }),
            shutdown: watch::channel(false).0,
            topic_level_metrics: config.get("exposeTopicLevelMetricsInPrometheus") == Some("true"),
        })
    }

    /// The configured listeners.
    pub fn listeners(&self) -> &[KafkaListener] {
        &self.listeners
    }

    /// Checks that the host's authentication serves the `SASL_*` listeners
    /// (see [`sasl::enabled_mechanisms`]), then [`set_host`](Self::set_host).
    pub fn start(&self, host: Host) -> Result<(), HandlerError> {
        let mechanisms = sasl::enabled_mechanisms(&self.listeners, &self.sasl_allowed, &host.authentication())?;
        if !mechanisms.is_empty() {
            tracing::info!(mechanisms = %mechanisms.join(","), "SASL mechanisms enabled on the Kafka SASL listeners");
            let provider: Arc<dyn sasl::SaslProvider> = Arc::new(host.clone());
            let _ = self.shared.sasl.set(sasl::Sasl { mechanisms, provider });
        }
        self.set_host(host);
        Ok(())
    }

    /// Gives the service the host's storage services and starts the group
    /// coordinator (without checking authentication: [`start`](Self::start) does).
    pub fn set_host(&self, host: Host) {
        let namespace = self.shared.topics.namespace().to_owned();
        let ensure = host.clone();
        // Topics of a kafkaNamespace other than public/default need it to exist.
        host.spawn("kafka-namespace", async move {
            if let Err(e) = ensure.create_namespace(&namespace).await {
                tracing::error!(namespace = %namespace, error = %e, "cannot create kafkaTenant/kafkaNamespace");
            }
        });
        self.shared.coordinator.start(
            &host,
            self.shared.topics.namespace(),
            Arc::clone(&self.shared.txn_index),
            Arc::clone(&self.shared.sequences),
        );
        // SCRAM credentials and grants (the admin APIs): the host decides who may.
        let _ = self.shared.security.set(Arc::new(host.clone()));
        // Asked once: the host's answer does not change while it runs.
        if host.authorization_enabled() {
            tracing::info!("Kafka requests are authorized (authorizationEnabled)");
            let _ = self.shared.authorizer.set(Arc::new(host.clone()));
        }
        let metrics = metrics::KafkaMetrics::register(&host, self.topic_level_metrics, Arc::downgrade(&self.shared));
        let _ = self.shared.metrics.set(metrics);
        // Pulsar consumers read the batches this handler stores through it.
        host.register_converter(records::FORMAT_KAFKA, convert::KafkaConverter);
        // Pulsar readers of Kafka partitions stop at the last stable offset
        // and skip aborted transactions and markers.
        let fence = txn_index::Fence::new(Arc::clone(&self.shared.txn_index), host.clone());
        if let Err(e) = host.register_read_fence(fence) {
            tracing::warn!(error = %e, "this broker has no read fences: its Pulsar readers see open and aborted Kafka transactions");
        }
        let _ = self.shared.host.set(host);
    }

    /// Serves one connection accepted on the listener named `listener` from
    /// `peer` (`ip:port`), without TLS.
    pub fn serve<S>(
        &self,
        listener: &str,
        peer: &str,
        stream: S,
    ) -> Result<impl std::future::Future<Output = Result<(), HandlerError>> + Send + 'static, HandlerError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        self.serve_as(listener, peer, None, stream)
    }

    /// [`serve`](Self::serve), for a client whose verified TLS certificate
    /// proves `tls_role` (the session's role on `SSL` listeners).
    pub fn serve_as<S>(
        &self,
        listener: &str,
        peer: &str,
        tls_role: Option<String>,
        stream: S,
    ) -> Result<impl std::future::Future<Output = Result<(), HandlerError>> + Send + 'static, HandlerError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let listener = self
            .listeners
            .iter()
            .find(|l| l.name == listener)
            .cloned()
            .ok_or_else(|| HandlerError::new(ErrorKind::STATE, format!("no Kafka listener named {listener}")))?;
        // Kafka shows a client's host as "/ip".
        let ip = peer.rsplit_once(':').map_or(peer, |(ip, _)| ip).trim_start_matches('[').trim_end_matches(']');
        let client_host: Arc<str> = format!("/{ip}").into();
        Ok(connection::serve_instrumented(
            stream,
            Arc::clone(&self.shared),
            listener,
            client_host,
            tls_role,
            self.shutdown.subscribe(),
        ))
    }

    /// Tells every connection to stop after its in-flight request.
    pub fn close(&self) {
        self.shutdown.send_replace(true);
    }
}

/// The plugin object.
#[derive(Default)]
pub struct KafkaHandler {
    service: Option<KafkaService>,
}

impl ProtocolHandler for KafkaHandler {
    fn protocol_name(&self) -> &str {
        "kafka"
    }

    fn config_keys(&self) -> Vec<String> {
        CONFIG_KEYS.iter().chain(coordinator::CoordinatorConfig::KEYS).map(|k| (*k).to_owned()).collect()
    }

    fn initialize(&mut self, config: &Config) -> Result<(), HandlerError> {
        self.service = Some(KafkaService::from_config(config)?);
        Ok(())
    }

    fn protocol_data_to_advertise(&self) -> String {
        // As KoP: the advertised listeners, NAME://host:port.
        self.service
            .iter()
            .flat_map(|s| s.listeners())
            .map(|l| format!("{}://{}:{}", l.name, l.advertised_host, l.advertised_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn start(&mut self, host: Host) -> Result<(), HandlerError> {
        let service =
            self.service.as_ref().ok_or_else(|| HandlerError::new(ErrorKind::STATE, "start before initialize"))?;
        service.start(host)
    }

    fn listeners(&self) -> Vec<Listener> {
        self.service
            .iter()
            .flat_map(|s| s.listeners())
            .map(|l| Listener { name: l.name.clone(), address: l.bind.clone() })
            .collect()
    }

    fn listener_tls(&self, listener: &str) -> bool {
        self.service.iter().flat_map(|s| s.listeners()).any(|l| l.name == listener && l.security.is_tls())
    }

    fn new_connection(&self, listener: &str, connection: Connection) -> ConnectionFuture {
        let future = self
            .service
            .as_ref()
            .ok_or_else(|| HandlerError::new(ErrorKind::STATE, "connection before initialize"))
            .and_then(|s| {
                // A host that did not terminate TLS where it was asked to
                // must not have plaintext served as if it were TLS.
                if self.listener_tls(listener) && !connection.is_tls() {
                    return Err(HandlerError::new(
                        ErrorKind::STATE,
                        format!(
                            "listener {listener} is a TLS listener, but the host handed over a connection without TLS"
                        ),
                    ));
                }
                let peer = connection.peer_addr().to_owned();
                let tls_role = connection.tls_role();
                s.serve_as(listener, &peer, tls_role, connection)
            });
        Box::pin(async move { future?.await })
    }

    fn close(&self) {
        if let Some(service) = &self.service {
            service.close();
        }
    }
}

export_handler!(KafkaHandler::default());

#[cfg(test)]
mod tests {
    use polyport_handler_api::testing::MemoryHost;

    use super::*;

    fn initialized(pairs: &[(&str, &str)]) -> KafkaHandler {
        let mut handler = KafkaHandler::default();
        let config = Config::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        handler.initialize(&config).expect("valid");
        handler
    }

    #[test]
    fn the_host_terminates_tls_on_ssl_listeners() {
        let handler =
            initialized(&[("kafkaListeners", "PLAINTEXT://:9092,SSL://:9093,SASL_PLAINTEXT://:9094,SASL_SSL://:9095")]);
        let tls: Vec<(String, bool)> =
            handler.listeners().into_iter().map(|l| (l.name.clone(), handler.listener_tls(&l.name))).collect();
        let tls: Vec<(&str, bool)> = tls.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        assert_eq!(tls, [("PLAINTEXT", false), ("SSL", true), ("SASL_PLAINTEXT", false), ("SASL_SSL", true)]);
        assert!(!handler.listener_tls("NO_SUCH_LISTENER"));
    }

    /// A SASL listener on a broker without authentication fails at start,
    /// telling the operator what to set.
    #[tokio::test]
    async fn sasl_listeners_need_the_hosts_authentication() {
        let mut handler = initialized(&[("kafkaListeners", "SASL_PLAINTEXT://127.0.0.1:9094")]);
        let err = handler.start(MemoryHost::new().host()).expect_err("authentication is off");
        assert_eq!(err.kind(), ErrorKind::CONFIG);
        assert!(err.message().contains("authenticationEnabled=true"), "{err}");

        let mut handler = initialized(&[("kafkaListeners", "SSL://127.0.0.1:9093")]);
        handler.start(MemoryHost::new().host()).expect("no SASL listener");
    }
}
