//! The trait a handler implements, and the guard that turns it into the ABI.

use std::{
    any::Any,
    collections::BTreeMap,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    str::FromStr,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RErr, RResult, RStr, RString, RVec},
};
use async_ffi::FutureExt;

use crate::{
    ffi::{
        FfiConfig, FfiConnectionFuture, FfiHandler, FfiHandlerBox, FfiHandler_TO, FfiHostBox, FfiListener,
        RawConnectionBox,
    },
    log, Connection, ErrorKind, HandlerError, Host,
};

/// The future that serves one connection. `Err` ends the connection and is logged by the host.
pub type ConnectionFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'static>>;

/// A socket address the host binds for the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Passed back to [`ProtocolHandler::new_connection`] with each connection
    /// accepted on this address (e.g. `PLAINTEXT`).
    pub name: String,
    /// `host:port` to bind, e.g. `0.0.0.0:9092`.
    pub address: String,
}

/// A protocol handler: the lifecycle follows Pulsar's `ProtocolHandler` (PIP-41).
///
/// The host calls, in order: [`protocol_name`](Self::protocol_name) and
/// [`accept`](Self::accept) to match `messagingProtocols`;
/// [`initialize`](Self::initialize) with the whole broker configuration;
/// [`start`](Self::start) with the host services;
/// [`protocol_data_to_advertise`](Self::protocol_data_to_advertise); [`listeners`](Self::listeners),
/// which the host binds; then [`new_connection`](Self::new_connection) for every
/// accepted connection, concurrently; and [`close`](Self::close) at shutdown.
///
/// Every call is guarded: a panic becomes an error value for the host, never an
/// unwind across the boundary.
pub trait ProtocolHandler: Send + Sync + 'static {
    /// The protocol's name as operators write it in `messagingProtocols`, e.g. `kafka`.
    fn protocol_name(&self) -> &str;

    /// Whether this handler serves `protocol`; by default a case-insensitive
    /// match with [`protocol_name`](Self::protocol_name).
    fn accept(&self, protocol: &str) -> bool {
        protocol.trim().eq_ignore_ascii_case(self.protocol_name())
    }

    /// The broker.conf keys this handler reads. The host warns about keys that
    /// neither it nor a loaded handler declares (typos, usually).
    fn config_keys(&self) -> Vec<String> {
        Vec::new()
    }

    /// Reads and validates this handler's keys from the broker configuration.
    /// Return [`HandlerError::config`] naming the key, the value and what was expected.
    fn initialize(&mut self, config: &Config) -> Result<(), HandlerError>;

    /// Data the broker advertises for this protocol (for Kafka: its advertised listeners).
    fn protocol_data_to_advertise(&self) -> String {
        String::new()
    }

    /// Receives the host services. Called once, after `initialize`, before `listeners`.
    fn start(&mut self, host: Host) -> Result<(), HandlerError>;

    /// The addresses the host binds for this handler.
    fn listeners(&self) -> Vec<Listener>;

    /// Whether the host terminates TLS on `listener` (one of
    /// [`listeners`](Self::listeners)) with its certificate
    /// (`tlsCertificateFilePath`), handing the handler plaintext. By
    /// default, no listener is TLS. The host refuses to start when a TLS
    /// listener is asked for and no certificate is configured.
    fn listener_tls(&self, listener: &str) -> bool {
        let _ = listener;
        false
    }

    /// Serves one connection accepted on the listener named `listener`.
    fn new_connection(&self, listener: &str, connection: Connection) -> ConnectionFuture;

    /// The broker is stopping: stop taking new requests and let connection
    /// futures finish their in-flight work. The host waits for them for
    /// `brokerShutdownTimeoutMs`, then drops them.
    fn close(&self) {}
}

/// The broker configuration: every `key=value` of broker.conf, environment
/// overrides applied. Keys are case-sensitive; empty values count as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    entries: BTreeMap<String, String>,
}

impl Config {
    /// A configuration holding `entries`.
    pub fn new(entries: impl IntoIterator<Item = (String, String)>) -> Self {
        Self { entries: entries.into_iter().collect() }
    }

    /// The value of `key`, if set and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// The value of `key` parsed as `T`, `default` if unset; an error naming
    /// the key, the value and `expected` if it does not parse.
    pub fn parse_or<T: FromStr>(&self, key: &str, default: T, expected: &str) -> Result<T, HandlerError> {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|_| HandlerError::config(key, raw, expected)),
        }
    }

    /// Every entry, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

/// Runs `f`, turning a panic into an [`ErrorKind::PANICKED`] error naming `what`.
fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, HandlerError>) -> RResult<T, HandlerError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(payload) => RErr(HandlerError::new(
            ErrorKind::PANICKED,
            format!("{what} panicked: {}", panic_message(payload.as_ref())),
        )),
    }
}

/// Adapts a [`ProtocolHandler`] to the [`FfiHandler`] ABI.
struct Guarded<H>(H);

impl<H: ProtocolHandler> FfiHandler for Guarded<H> {
    fn protocol_name(&self) -> RResult<RString, HandlerError> {
        guard("protocol_name", || Ok(self.0.protocol_name().into()))
    }

    fn accept(&self, protocol: RStr<'_>) -> RResult<bool, HandlerError> {
        guard("accept", || Ok(self.0.accept(protocol.as_str())))
    }

    fn config_keys(&self) -> RResult<RVec<RString>, HandlerError> {
        guard("config_keys", || Ok(self.0.config_keys().into_iter().map(RString::from).collect()))
    }

    fn initialize(&mut self, config: FfiConfig) -> RResult<(), HandlerError> {
        let config = Config::new(config.into_iter().map(|kv| (kv.0.into_string(), kv.1.into_string())));
        guard("initialize", || self.0.initialize(&config))
    }

    fn protocol_data_to_advertise(&self) -> RResult<RString, HandlerError> {
        guard("protocol_data_to_advertise", || Ok(self.0.protocol_data_to_advertise().into()))
    }

    fn start(&mut self, host: FfiHostBox) -> RResult<(), HandlerError> {
        let host = Host::from_ffi(host);
        log::install(&host);
        guard("start", || self.0.start(host))
    }

    fn listeners(&self) -> RResult<RVec<FfiListener>, HandlerError> {
        guard("listeners", || {
            Ok(self
                .0
                .listeners()
                .into_iter()
                .map(|l| FfiListener { name: l.name.into(), address: l.address.into() })
                .collect())
        })
    }

    fn new_connection(&self, listener: RStr<'_>, conn: RawConnectionBox) -> RResult<FfiConnectionFuture, HandlerError> {
        guard("new_connection", || {
            let future = self.0.new_connection(listener.as_str(), Connection::from_raw(conn));
            // A panic while polling is caught by async-ffi and reported to the host.
            Ok(async move { RResult::from(future.await) }.into_ffi())
        })
    }

    fn close(&self) -> RResult<(), HandlerError> {
        guard("close", || {
            self.0.close();
            Ok(())
        })
    }

    fn listener_tls(&self, listener: RStr<'_>) -> RResult<bool, HandlerError> {
        guard("listener_tls", || Ok(self.0.listener_tls(listener.as_str())))
    }
}

/// Builds the guarded handler object; used by [`export_handler!`](crate::export_handler).
#[doc(hidden)]
pub fn new_handler<H: ProtocolHandler>(constructor: impl FnOnce() -> H) -> RResult<FfiHandlerBox, HandlerError> {
    guard("handler constructor", || Ok(FfiHandler_TO::from_value(Guarded(constructor()), TD_Opaque)))
}
