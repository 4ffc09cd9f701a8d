//! The Polyport broker host: configuration, runtime, sockets and protocol
//! handler loading. It knows no protocol of its own handlers (ARCHITECTURE.md).
//!
//! [`Broker::start`] runs start-up (load, select, initialize, start, bind) and
//! reports every failure as a [`StartupError`] naming its cause;
//! [`Broker::serve`] accepts until shutdown.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod convert;
pub mod limits;
pub mod loader;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod ownership;
pub mod pulsar;
pub mod registry;
pub mod security;
pub mod server;
pub mod services;
pub mod tiering;
pub mod topics;

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use abi_stable::std_types::{RString, Tuple2};
use config::BrokerConfig;
use polyport_handler_api::LogLevel;
use server::{BoundListener, RunningHandler};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Why the broker could not start. Every variant means exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A requested protocol cannot be served.
    #[error(transparent)]
    Select(#[from] loader::SelectError),
    /// A handler rejected its configuration or failed to start.
    #[error("protocol handler {protocol} ({library}): {stage} failed: {message}")]
    Handler {
        /// The protocol.
        protocol: String,
        /// The library file.
        library: String,
        /// initialize, start, protocol_data_to_advertise or listeners.
        stage: &'static str,
        /// The handler's error.
        message: String,
    },
    /// A listener address is invalid, claimed twice or cannot be bound.
    #[error("{0}")]
    Listener(String),
    /// The data directory cannot be created or is in use.
    #[error("dataDirectory {path}: {message}")]
    DataDirectory {
        /// The directory.
        path: PathBuf,
        /// The cause.
        message: String,
    },
    /// The metadata store or topics cannot be opened.
    #[error("storage: {0}")]
    Storage(String),
    /// The metadata store of `metadataStoreUrl` cannot be reached.
    #[error("metadataStoreUrl: {0}")]
    MetadataStore(String),
    /// A TLS file or an authentication key cannot be used.
    #[error("{0}")]
    Security(String),
}

/// How long start-up waits for etcd to answer before it gives up (exit 2).
const ETCD_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A started broker: handlers running, listeners bound.
pub struct Broker {
    config: BrokerConfig,
    handlers: Vec<Arc<RunningHandler>>,
    listeners: Vec<BoundListener>,
    /// The built-in Pulsar protocol and its bound socket (unless `brokerServicePort` is empty).
    pulsar: Option<(Arc<pulsar::PulsarService>, tokio::net::TcpListener)>,
    /// `brokerServicePortTls`, bound, with the acceptor.
    pulsar_tls: Option<(tokio::net::TcpListener, security::tls::Tls)>,
    /// `webServicePort`, bound, with what the admin API serves.
    admin: (tokio::net::TcpListener, Arc<admin::AdminState>),
    /// `webServicePortTls`, bound, with the acceptor.
    admin_tls: Option<(tokio::net::TcpListener, security::tls::Tls)>,
    topics: Arc<topics::Topics>,
    /// This broker's entry among the live brokers (with a shared metadata store).
    registration: Option<registry::Registration>,
    _lock: std::fs::File,
}

impl Broker {
    /// Start-up: data directory, handler discovery and selection, initialize,
    /// start, listeners. Must run inside the runtime that will serve.
    pub async fn start(config: BrokerConfig, max_log_level: LogLevel) -> Result<Self, StartupError> {
        let data_error = |message: String| StartupError::DataDirectory { path: config.data_directory.clone(), message };
        std::fs::create_dir_all(&config.data_directory).map_err(|e| data_error(e.to_string()))?;
        let lock = lock_data_directory(&config.data_directory).map_err(data_error)?;
        let mut etcd = None;
        let store: Arc<dyn metadata::MetadataStore> = match &config.metadata_store_url {
            None => Arc::new(
                metadata::RedbStore::open(&config.data_directory.join("metadata.redb"))
                    .map_err(|e| StartupError::Storage(e.to_string()))?,
            ),
            Some(url) => {
                let store = metadata::EtcdStore::connect(url, ETCD_CONNECT_TIMEOUT, config.metadata_session_timeout)
                    .await
                    .map_err(|e| match e {
                        metadata::MetadataError::Store(reason) => StartupError::MetadataStore(reason),
                        other => StartupError::MetadataStore(other.to_string()),
                    })?;
                tracing::info!(url = %url, "metadata store: etcd");
                let store = Arc::new(store);
                etcd = Some(Arc::clone(&store));
                store
            }
        };
        let backend: Arc<dyn polyport_ledger::backend::Backend> = Arc::new(polyport_ledger::backend::FsBackend::new(
            polyport_ledger::CachePool::new(usize::try_from(config.storage.cache_bytes).unwrap_or(usize::MAX)),
            config.storage.direct_io,
        ));
        let topics = topics::Topics::open(
            Arc::clone(&store),
            config.data_directory.join("ledgers"),
            config.storage.clone(),
            Arc::clone(&backend),
        )
        .await
        .map_err(|e| StartupError::Storage(e.to_string()))?;
        topics.spawn_retention();
        let broker_id = format!("{}:{}", config.advertised_address, config.web_service_port);
        if let Some(store) = &etcd {
            // Before the handlers start: what they open is owned from the first call.
            topics.set_cluster(cluster::Cluster::start(Arc::clone(store), broker_id.clone()).await);
        }
        if let Some(offload) = &config.offload {
            let tiering = tiering::Tiering::new(
                offload.clone(),
                Arc::clone(&store),
                backend,
                config.cluster_name.clone(),
                broker_id.clone(),
            )
            .map_err(|e| StartupError::Storage(format!("managedLedgerOffloadDriver: {e}")))?;
            // This run's epoch, for a broker without a cluster (a cluster's
            // partitions take their ownership epochs).
            let run_epoch =
                topics.allocate("ledger-epochs", 1, 1).await.map_err(|e| StartupError::Storage(e.to_string()))?;
            tracing::info!(bucket = %offload.bucket, endpoint = offload.endpoint.as_deref().unwrap_or("AWS"),
                interval_s = offload.interval.as_secs(), "tiered storage: segments offloaded to S3");
            topics.set_tiering(tiering, i64::try_from(run_epoch).unwrap_or(i64::MAX));
        }

        let (selected, failed) = if config.messaging_protocols.is_empty() {
            tracing::info!("messagingProtocols is empty: no protocol handlers loaded");
            (Vec::new(), Vec::new())
        } else {
            loader::discover(&config.protocol_handler_directory)?.select(&config.messaging_protocols)?
        };
        for failure in &failed {
            tracing::warn!("ignoring protocol handler library {failure}");
        }

        let security_error = |e: String| StartupError::Security(e);
        let authenticator = Arc::new(
            security::Authenticator::new(Some(Arc::clone(&topics)), &config.security.auth)
                .map_err(|e| security_error(format!("authentication: {e}")))?,
        );
        let tls = match &config.security.tls {
            None => None,
            Some(tls) => Some(
                security::tls::Tls::new(tls, authenticator.tls_provider())
                    .map_err(|e| security_error(e.to_string()))?,
            ),
        };
        let authorizer = Arc::new(security::authz::Authorizer::new(config.security.authz.clone(), Arc::clone(&topics)));
        if authorizer.enabled() && !authenticator.enabled() {
            tracing::warn!(
                "authorizationEnabled=true without authenticationEnabled: clients prove no role, so only \
                anonymousUserRole's grants apply"
            );
        }
        if authenticator.enabled() {
            tracing::info!(sasl = %authenticator.sasl_mechanisms().join(","), tls_roles = authenticator.tls_provider(),
                super_users = authenticator.super_users().len(), "authentication enabled");
        }

        let converters = Arc::new(convert::Converters::default());
        let metrics = metrics::Metrics::new(config.metrics, &config.cluster_name);
        let services = services::HostServices::new(
            tokio::runtime::Handle::current(),
            max_log_level,
            Arc::clone(&topics),
            config.advertised_address.clone(),
            Arc::clone(&converters),
            Arc::clone(&authenticator),
            Arc::clone(&authorizer),
            Arc::clone(&metrics),
        );
        let ffi_config: polyport_handler_api::ffi::FfiConfig =
            config.entries.iter().map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str()))).collect();
        let mut handler_keys = Vec::new();
        let mut handlers = Vec::new();
        let mut protocols = std::collections::BTreeMap::new();
        for mut lib in selected {
            let library = loader::file_name(&lib.path);
            let fail = |stage: &'static str, e: polyport_handler_api::HandlerError| StartupError::Handler {
                protocol: lib.protocol.clone(),
                library: library.clone(),
                stage,
                message: e.to_string(),
            };
            if let Ok(keys) = lib.handler.config_keys().into_result() {
                handler_keys.extend(keys.into_iter().map(RString::into_string));
            }
            lib.handler.initialize(ffi_config.clone()).into_result().map_err(|e| fail("initialize", e))?;
            lib.handler
                .start(services.for_protocol(&lib.protocol).into_ffi())
                .into_result()
                .map_err(|e| fail("start", e))?;
            let advertised = lib
                .handler
                .protocol_data_to_advertise()
                .into_result()
                .map_err(|e| fail("protocol_data_to_advertise", e))?;
            tracing::info!(protocol = %lib.protocol, library = %library, advertised = %advertised, "protocol handler started");
            protocols.insert(lib.protocol.clone(), advertised.into_string());
            handlers.push(Arc::new(RunningHandler { protocol: lib.protocol, library, handler: lib.handler }));
        }
        let unknown: Vec<&str> = config.unknown_keys(&handler_keys).collect();
        if !unknown.is_empty() {
            tracing::warn!(keys = %unknown.join(", "), "configuration keys not used by the host or any loaded handler");
        }

        let listeners = bind_all(&handlers, tls.as_ref()).await?;
        let mut pulsar_tls = None;
        let pulsar = match config.broker_service_port {
            None => {
                tracing::info!("brokerServicePort is empty: the Pulsar protocol is off");
                None
            }
            Some(port) => {
                let listener =
                    pulsar::bind(SocketAddr::new(config.bind_address, port)).await.map_err(StartupError::Listener)?;
                let port = listener.local_addr().map_or(port, |a| a.port());
                pulsar_tls = match (config.security.broker_service_port_tls, &tls) {
                    (Some(port), Some(tls)) => {
                        let listener = pulsar::bind(SocketAddr::new(config.bind_address, port))
                            .await
                            .map_err(StartupError::Listener)?;
                        Some((listener, tls.clone()))
                    }
                    _ => None,
                };
                let tls_port = pulsar_tls.as_ref().and_then(|(l, _)| l.local_addr().ok()).map(|a| a.port());
                let service = pulsar::PulsarService::new(
                    Arc::clone(&topics),
                    Arc::clone(&converters),
                    config.pulsar.clone(),
                    &pulsar::Advertised { host: &config.advertised_address, port, tls_port },
                    &config.cluster_name,
                    config.limits,
                    pulsar::Security { authenticator: Arc::clone(&authenticator), authorizer: Arc::clone(&authorizer) },
                    Arc::clone(&metrics),
                );
                Some((Arc::new(service), listener))
            }
        };
        let admin_listener = admin::bind(SocketAddr::new(config.bind_address, config.web_service_port))
            .await
            .map_err(StartupError::Listener)?;
        let admin_tls = match (config.security.web_service_port_tls, &tls) {
            (Some(port), Some(tls)) => Some((
                admin::bind(SocketAddr::new(config.bind_address, port)).await.map_err(StartupError::Listener)?,
                tls.clone(),
            )),
            _ => None,
        };
        let admin_state = Arc::new(admin::AdminState {
            topics: Arc::clone(&topics),
            authenticator: Arc::clone(&authenticator),
            authorizer: Arc::clone(&authorizer),
            cluster: config.cluster_name.clone(),
            instance: admin_listener.local_addr().map_or_else(|_| "0".to_owned(), |a| a.port().to_string()),
            metrics: Arc::clone(&metrics),
            pulsar: pulsar.as_ref().map(|(service, _)| Arc::clone(service)),
            converters: Arc::clone(&converters),
            urls: admin::Urls {
                web: format!(
                    "http://{}:{}",
                    config.advertised_address,
                    admin_listener.local_addr().map_or(config.web_service_port, |a| a.port())
                ),
                web_tls: admin_tls
                    .as_ref()
                    .and_then(|(l, _)| l.local_addr().ok())
                    .map(|a| format!("https://{}:{}", config.advertised_address, a.port())),
                broker: pulsar
                    .as_ref()
                    .and_then(|(_, l)| l.local_addr().ok())
                    .map(|a| format!("pulsar://{}:{}", config.advertised_address, a.port())),
                broker_tls: pulsar.as_ref().and_then(|(service, _)| service.service_url_tls.clone()),
            },
        });
        // Registered last, once every listener is bound: a broker others can
        // see is one clients can reach.
        let registration = match etcd {
            None => None,
            Some(store) => {
                let address = &config.advertised_address;
                let data = registry::BrokerData {
                    web_service_url: format!("http://{address}:{}", config.web_service_port),
                    pulsar_service_url: pulsar
                        .as_ref()
                        .and_then(|(_, l)| l.local_addr().ok())
                        .map(|a| format!("pulsar://{address}:{}", a.port())),
                    pulsar_service_url_tls: pulsar.as_ref().and_then(|(service, _)| service.service_url_tls.clone()),
                    protocols,
                    start_timestamp: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0)),
                    broker_version: format!("polyport-{}", env!("CARGO_PKG_VERSION")),
                    instance: registry::instance_id(&config.data_directory).map_err(|e| {
                        StartupError::DataDirectory { path: config.data_directory.clone(), message: e.to_string() }
                    })?,
                };
                let registered =
                    registry::Registration::register(store, &broker_id, &data, config.metadata_session_timeout).await;
                Some(registered.map_err(|e| StartupError::MetadataStore(e.to_string()))?)
            }
        };
        Ok(Self {
            config,
            handlers,
            listeners,
            pulsar,
            pulsar_tls,
            admin: (admin_listener, admin_state),
            admin_tls,
            topics,
            registration,
            _lock: lock,
        })
    }

    /// The addresses bound, with their protocol and listener name.
    pub fn local_addrs(&self) -> Vec<(String, String, SocketAddr)> {
        let pulsar = self.pulsar.iter().filter_map(|(_, l)| l.local_addr().ok());
        let pulsar_tls = self.pulsar_tls.iter().filter_map(|(l, _)| l.local_addr().ok());
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().map(|a| (l.handler.protocol.clone(), l.name.clone(), a)))
            .chain(pulsar.map(|a| ("pulsar".to_owned(), "brokerServicePort".to_owned(), a)))
            .chain(pulsar_tls.map(|a| ("pulsar".to_owned(), "brokerServicePortTls".to_owned(), a)))
            .chain(self.admin.0.local_addr().ok().map(|a| ("http".to_owned(), "webServicePort".to_owned(), a)))
            .chain(
                self.admin_tls
                    .iter()
                    .filter_map(|(l, _)| l.local_addr().ok())
                    .map(|a| ("http".to_owned(), "webServicePortTls".to_owned(), a)),
            )
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting, closes the
    /// handlers and waits up to `brokerShutdownTimeoutMs` for connections.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let stop = CancellationToken::new();
        let connections = TaskTracker::new();
        // Every listener's connections count against one set of limits.
        let admitted = limits::Connections::new(self.config.limits);
        let mut accept_loops = Vec::new();
        for bound in self.listeners {
            tracing::info!(protocol = %bound.handler.protocol, listener = %bound.name,
                address = %bound.local_addr().map(|a| a.to_string()).unwrap_or_default(), "listening");
            let admitted = Arc::clone(&admitted);
            accept_loops.push(tokio::spawn(server::accept_loop(bound, admitted, stop.clone(), connections.clone())));
        }
        if let Some((service, listener)) = self.pulsar {
            tracing::info!(protocol = "pulsar", address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                "listening");
            if let Some((tls_listener, tls)) = self.pulsar_tls {
                tracing::info!(protocol = "pulsar", tls = true,
                    address = %tls_listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "listening");
                accept_loops.push(tokio::spawn(pulsar::accept_loop(
                    Arc::clone(&service),
                    tls_listener,
                    Some(tls),
                    Arc::clone(&admitted),
                    stop.clone(),
                    connections.clone(),
                )));
            }
            let admitted = Arc::clone(&admitted);
            accept_loops.push(tokio::spawn(pulsar::accept_loop(
                service,
                listener,
                None,
                admitted,
                stop.clone(),
                connections.clone(),
            )));
        }
        let (admin_listener, admin_state) = self.admin;
        tracing::info!(protocol = "http", address = %admin_listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            "listening (admin REST API)");
        if let Some((listener, tls)) = self.admin_tls {
            tracing::info!(protocol = "https", address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                "listening (admin REST API over TLS)");
            tokio::spawn(admin::serve_tls(listener, tls, Arc::clone(&admin_state), stop.clone()));
        }
        tokio::spawn(metrics::Metrics::sample_rates(
            Arc::clone(&self.topics),
            self.config.metrics.stats_interval,
            stop.clone(),
        ));
        let admin_task = tokio::spawn(admin::serve(admin_listener, admin_state, stop.clone()));
        tracing::info!(cluster = %self.config.cluster_name, "broker ready");

        shutdown.await;
        tracing::info!("shutting down: no new connections");
        // Other brokers and clients stop sending here first: this broker
        // stops serving what it owns, then its session ends, which deletes
        // its registration and owner keys in one step, and the other
        // brokers claim those partitions as clients come to them.
        if let Some(cluster) = self.topics.cluster() {
            cluster.stop_serving(self.topics.tiering().is_some());
        }
        // What was acknowledged goes to the object store before the
        // partitions go to other brokers, which restore it from there.
        if let Some(tiering) = self.topics.tiering() {
            let deadline = tokio::time::Instant::now() + self.config.shutdown_timeout;
            let failed = tiering.flush_all(&self.topics, deadline).await;
            tracing::info!(failed, "tiered storage flushed for the handover");
            if let Some(cluster) = self.topics.cluster() {
                cluster.end_handover();
            }
        }
        if let Some(registration) = self.registration {
            registration.release().await;
        }
        stop.cancel();
        for accept in accept_loops {
            let _ = accept.await;
        }
        let _ = admin_task.await;
        for running in &self.handlers {
            if let Err(e) = running.handler.close().into_result() {
                tracing::warn!(protocol = %running.protocol, error = %e, "handler close failed");
            }
        }
        connections.close();
        let timeout = self.config.shutdown_timeout;
        if tokio::time::timeout(timeout, connections.wait()).await.is_err() {
            tracing::warn!(
                open = connections.len(),
                "connections still open after brokerShutdownTimeoutMs={}; closing them",
                timeout.as_millis()
            );
        }
        self.topics.close_all().await;
        tracing::info!("broker stopped");
    }
}

/// Resolves, checks and binds every handler listener. Two listeners that
/// would share a port (same address, or one of them a wildcard) are refused
/// before anything is bound, naming both.
async fn bind_all(
    handlers: &[Arc<RunningHandler>],
    tls: Option<&security::tls::Tls>,
) -> Result<Vec<BoundListener>, StartupError> {
    let mut planned: Vec<(Arc<RunningHandler>, String, SocketAddr, Option<security::tls::Tls>)> = Vec::new();
    for running in handlers {
        let specs = running.handler.listeners().into_result().map_err(|e| StartupError::Handler {
            protocol: running.protocol.clone(),
            library: running.library.clone(),
            stage: "listeners",
            message: e.to_string(),
        })?;
        for spec in specs {
            let (name, address) = (spec.name.into_string(), spec.address.into_string());
            let addr =
                tokio::net::lookup_host(address.as_str()).await.ok().and_then(|mut a| a.next()).ok_or_else(|| {
                    StartupError::Listener(format!(
                        "protocol {} listener {name}: cannot resolve address {address:?} (expected host:port)",
                        running.protocol
                    ))
                })?;
            if let Some((other, other_name, other_addr, _)) = planned.iter().find(|(_, _, a, _)| overlaps(*a, addr)) {
                return Err(StartupError::Listener(format!(
                    "two handlers on one address: {} listener {name} ({addr}) and {} listener {other_name} ({other_addr})",
                    running.protocol, other.protocol
                )));
            }
            // A handler built before 0.2.2 is not asked and gets plaintext.
            let wants_tls = running.handler.listener_tls(name.as_str().into()).into_result().unwrap_or(false);
            let listener_tls = match (wants_tls, tls) {
                (false, _) => None,
                (true, Some(tls)) => Some(tls.clone()),
                (true, None) => {
                    return Err(StartupError::Listener(format!(
                        "protocol {} listener {name} is a TLS listener, and TLS needs tlsCertificateFilePath and \
                         tlsKeyFilePath",
                        running.protocol
                    )))
                }
            };
            planned.push((Arc::clone(running), name, addr, listener_tls));
        }
    }
    let mut bound = Vec::new();
    for (handler, name, addr, tls) in planned {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            StartupError::Listener(format!("protocol {} listener {name}: cannot bind {addr}: {e}", handler.protocol))
        })?;
        bound.push(BoundListener { handler, name, listener, tls });
    }
    Ok(bound)
}

/// Takes an exclusive lock on `dir/LOCK` for the life of the process, so two
/// brokers never share a data directory.
fn lock_data_directory(dir: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err("is in use by another broker process (its LOCK file is held)".into());
    }
    Ok(file)
}

fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
