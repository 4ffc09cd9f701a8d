//! One Kafka connection: size-prefixed frames in, responses out, in order.
//!
//! Requests are pipelined, as clients expect: a reader takes frames off the
//! socket while earlier requests are still being served (a Produce waiting for
//! its fsync, a Fetch waiting for data), up to [`MAX_IN_FLIGHT`]; responses
//! are written in request order. Produce requests also place their appends
//! in request order ([`crate::order`]), so pipelined batches are stored in
//! the order they were sent, as Kafka stores them.
//!
//! A frame whose size is negative, too small for a request header, or above
//! `kafkaMaxRequestBytes` ends the connection (the stream cannot be
//! resynchronised); so does a body that does not decode. An API key or version
//! we do not serve is answered and the connection goes on.
//!
//! On `SASL_*` listeners, the connection first authenticates, one frame at a
//! time ([`crate::sasl`]); [`serve`] then runs with the [`Session`] it proved.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::Poll,
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{stream::FuturesOrdered, StreamExt};
use kafka_protocol::messages::ApiKey;
use polyport_handler_api::{ErrorKind, HandlerError, Host};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore},
};
use tracing::Instrument;

use crate::{
    apis::{self, api_versions, BrokerInfo, Response},
    listeners::KafkaListener,
    order::{Sequencer, Turn},
    sasl::Sasl,
    session::Session,
    topics::TopicMapper,
    ProtocolError,
};

/// Smallest request: api key, api version, correlation id.
pub(crate) const MIN_REQUEST: usize = 8;
/// Requests of one connection served at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// Request bytes one connection may hold at once (read ahead or in flight);
/// at least one request of `kafkaMaxRequestBytes` always fits. With the
/// request count limit, this bounds a connection's memory by configuration.
pub const MAX_IN_FLIGHT_BYTES: usize = 64 * 1024 * 1024;

/// A request frame's buffer before its bytes arrive. A produce request of
/// many partitions is several MiB, and growing its buffer by doubling as the
/// bytes come in copied nearly all of them once more, so requests up to this size get
/// their whole buffer at once. That is address space, not memory, until the
/// bytes arrive (pages are touched as they are written), and the
/// connection's byte budget already holds the announced size. A request
/// announced larger grows with its bytes, so a size that is announced and
/// never sent takes no more than this.
const INITIAL_FRAME_CAPACITY: usize = 16 << 20;

/// What every connection of a handler shares.
#[derive(Debug)]
pub struct Shared {
    /// This broker.
    pub broker: BrokerInfo,
    /// `kafkaMaxRequestBytes`.
    pub max_request_bytes: usize,
    /// `maxMessageSize`: the largest record batch accepted.
    pub max_message_bytes: usize,
    /// Kafka names to Pulsar topics.
    pub topics: TopicMapper,
    /// The host services, once started.
    pub host: OnceLock<Host>,
    /// Producer ids for idempotent producers.
    pub producer_ids: crate::apis::init_producer_id::ProducerIds,
    /// Fetch sessions (KIP-227).
    pub fetch_sessions: crate::apis::fetch_sessions::FetchSessions,
    /// The group coordinator.
    pub coordinator: crate::coordinator::Coordinator,
    /// `entryFormat`.
    pub entry_format: crate::EntryFormat,
    /// `kafkaMessageTimestampType=LogAppendTime`: batches are stamped with
    /// the broker's time when stored.
    pub log_append_time: bool,
    /// Idempotent producers' sequences.
    pub sequences: Arc<crate::idempotence::Sequences>,
    /// Each partition's open and aborted transactions.
    pub txn_index: Arc<crate::txn_index::TxnIndex>,
    /// The SASL mechanisms enabled and the exchanges' source, set at start
    /// when a `SASL_*` listener exists.
    pub sasl: OnceLock<Sasl>,
    /// Who authorizes requests, set at start when the host's
    /// `authorizationEnabled` is on ([`crate::authz`]); unset, nothing is
    /// asked.
    pub authorizer: OnceLock<Arc<dyn crate::authz::Authorizer>>,
    /// The host's SCRAM credential and grant services, set at start
    /// ([`crate::admin`]); unset without a host.
    pub security: OnceLock<Arc<dyn crate::admin::SecurityAdmin>>,
    /// The handler's metrics, declared at start ([`crate::metrics`]).
    pub metrics: OnceLock<crate::metrics::KafkaMetrics>,
}

impl Shared {
    /// The handler's metrics (disabled ones before start or without a host).
    pub fn metrics(&self) -> &crate::metrics::KafkaMetrics {
        static DISABLED: OnceLock<crate::metrics::KafkaMetrics> = OnceLock::new();
        self.metrics.get().unwrap_or_else(|| DISABLED.get_or_init(crate::metrics::KafkaMetrics::disabled))
    }

    /// This broker's node id: 0 standalone, the host's number for it in a cluster.
    pub fn node_id(&self) -> i32 {
        self.host.get().map_or(0, Host::node_id)
    }

    /// The timestamp type of every topic, as Kafka names it.
    pub fn timestamp_type(&self) -> &'static str {
        if self.log_append_time {
            "LogAppendTime"
        } else {
            "CreateTime"
        }
    }

    /// A configuration for unit tests (no host).
    #[cfg(test)]
    pub fn for_tests() -> Self {
        Self {
            broker: BrokerInfo {
                cluster_id: "test".into(),
                auto_create_topics: true,
                default_partitions: 1,
                any_replication_factor: false,
            },
            max_request_bytes: 1 << 20,
            max_message_bytes: 1 << 20,
            topics: TopicMapper::new("public/default".into()),
            host: OnceLock::new(),
            producer_ids: crate::apis::init_producer_id::ProducerIds::new(0),
            fetch_sessions: crate::apis::fetch_sessions::FetchSessions::default(),
            coordinator: crate::coordinator::Coordinator::new(crate::coordinator::CoordinatorConfig {
                group: crate::coordinator::GroupConfig::default(),
                metadata_namespace: "public/__kafka".into(),
                partitions: 1,
                retention_check: std::time::Duration::from_secs(600),
                transactions: true,
                txn_limits: crate::coordinator::TxnLimits {
                    max_timeout_ms: 900_000,
                    abort_check: std::time::Duration::from_secs(10),
                },
            }),
            entry_format: crate::EntryFormat::Kafka,
            log_append_time: false,
            sequences: Arc::default(),
            txn_index: Arc::default(),
            sasl: OnceLock::new(),
            authorizer: OnceLock::new(),
            security: OnceLock::new(),
            metrics: OnceLock::new(),
        }
    }
}

type Pending = Pin<Box<dyn Future<Output = Result<Option<Response>, ProtocolError>> + Send>>;
/// A request being served, with the share of the byte budget its frame holds.
type Held = Pin<Box<dyn Future<Output = (Result<Option<Response>, ProtocolError>, OwnedSemaphorePermit)> + Send>>;

/// Serves `stream` until the client closes it, a frame is malformed, or
/// `shutdown` turns true (in-flight requests are finished first). Every
/// request is served as `session`'s.
pub async fn serve<S>(
    stream: S,
    shared: Arc<Shared>,
    listener: KafkaListener,
    client_host: Arc<str>,
    session: Arc<Session>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), HandlerError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Counts the connection among the open ones while it is served.
    struct Open(Arc<Shared>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.metrics().connections.add(-1.0);
        }
    }
    shared.metrics().connections.inc();
    let _open = Open(Arc::clone(&shared));
    let (read_half, mut write_half) = tokio::io::split(stream);
    let (frames, mut incoming) = mpsc::channel::<(Bytes, OwnedSemaphorePermit)>(MAX_IN_FLIGHT);
    let max_request = shared.max_request_bytes;
    let budget_bytes = MAX_IN_FLIGHT_BYTES.max(max_request);
    let budget = Arc::new(Semaphore::new(budget_bytes));
    let reader = async move {
        let mut reader = BufReader::with_capacity(64 * 1024, read_half);
        loop {
            let frame = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                frame = read_frame(&mut reader, max_request, &budget) => frame?,
            };
            let Some(frame) = frame else { return Ok(()) };
            if frames.send(frame).await.is_err() {
                return Ok(());
            }
        }
    };
    let listener = Arc::new(listener);
    let writer = async move {
        let mut in_flight: FuturesOrdered<Held> = FuturesOrdered::new();
        let mut sequencer = Sequencer::default();
        let mut reading = true;
        loop {
            tokio::select! {
                biased;
                Some((done, permit)) = in_flight.next(), if !in_flight.is_empty() => {
                    match done {
                        Ok(Some(response)) => {
                            // A Fetch's large batches go from storage to the
                            // socket as they are, one write each.
                            for chunk in response.chunks() {
                                write_half.write_all(chunk).await?;
                            }
                            drop(permit);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            match &e {
                                ProtocolError::Decode(_) => tracing::warn!(error = %e, "malformed request; closing connection"),
                                ProtocolError::Encode(_) => tracing::error!(error = %e, "cannot encode a response (a bug); closing connection"),
                                ProtocolError::Acks0Failed(_) => tracing::info!(error = %e, "closing connection"),
                            }
                            return Err(HandlerError::new(ErrorKind::PROTOCOL, e.to_string()));
                        }
                    }
                }
                frame = incoming.recv(), if reading && in_flight.len() < MAX_IN_FLIGHT => {
                    let Some((frame, permit)) = frame else {
                        reading = false;
                        continue;
                    };
                    let turn = is_produce(&frame).then(|| sequencer.take_turn());
                    let mut pending = process(
                        frame,
                        Arc::clone(&shared),
                        Arc::clone(&listener),
                        Arc::clone(&client_host),
                        Arc::clone(&session),
                        turn,
                    );
                    // Poll once now: a request that can be answered at once
                    // (most can) is not boxed again.
                    let first = std::future::poll_fn(|cx| Poll::Ready(pending.as_mut().poll(cx))).await;
                    match first {
                        Poll::Ready(result) => in_flight.push_back(Box::pin(std::future::ready((result, permit)))),
                        Poll::Pending => in_flight.push_back(Box::pin(async move { (pending.await, permit) })),
                    }
                }
                else => return Ok(()),
            }
        }
    };
    // The reader ending (end of stream, a bad frame, shutdown) lets the writer
    // finish what is in flight; the writer ending (a write error, a request
    // that does not decode) ends the connection at once.
    tokio::pin!(reader, writer);
    let mut read_result = None;
    loop {
        tokio::select! {
            read = &mut reader, if read_result.is_none() => read_result = Some(read),
            written = &mut writer => return written.and(read_result.unwrap_or(Ok(()))),
        }
    }
}

/// Reads one frame, once `budget` has room for it; `None` at a clean end of stream.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_request: usize,
    budget: &Arc<Semaphore>,
) -> Result<Option<(Bytes, OwnedSemaphorePermit)>, HandlerError> {
    let size = match reader.read_i32().await {
        Ok(size) => size,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let size = match usize::try_from(size) {
        Ok(n) if (MIN_REQUEST..=max_request).contains(&n) => n,
        _ => {
            tracing::warn!(
                size,
                limit = max_request,
                "invalid request size (kafkaMaxRequestBytes); closing connection"
            );
            return Err(HandlerError::new(ErrorKind::PROTOCOL, format!("invalid request size {size}")));
        }
    };
    // Wait for earlier requests to be answered if this one would not fit.
    let permits = u32::try_from(size).unwrap_or(u32::MAX);
    let permit = Arc::clone(budget)
        .acquire_many_owned(permits)
        .await
        .map_err(|_| HandlerError::new(ErrorKind::STATE, "request budget closed"))?;
    // Sized by what was announced only up to INITIAL_FRAME_CAPACITY; past
    // it, the buffer doubles as the bytes come in.
    let frame = read_body(reader, size, size.min(INITIAL_FRAME_CAPACITY)).await?;
    Ok(Some((frame.freeze(), permit)))
}

/// Reads the `size` bytes of a frame's body into a buffer of `initial`
/// capacity that doubles as the bytes come in, so that a size announced and
/// never sent takes no more than `initial`.
pub(crate) async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    size: usize,
    initial: usize,
) -> Result<BytesMut, HandlerError> {
    let mut frame = BytesMut::with_capacity(initial.min(size));
    // read_buf fills the spare capacity without zeroing it first.
    while frame.len() < size {
        let remaining = size - frame.len();
        if frame.capacity() == frame.len() {
            frame.reserve(frame.len().min(remaining));
        }
        let mut limited = (&mut frame).limit(remaining);
        if reader.read_buf(&mut limited).await? == 0 {
            return Err(HandlerError::new(
                ErrorKind::PROTOCOL,
                format!("connection closed inside a {size}-byte request"),
            ));
        }
    }
    Ok(frame)
}

/// Whether `frame` (at least [`MIN_REQUEST`] bytes) is a Produce request.
fn is_produce(frame: &[u8]) -> bool {
    frame[..2] == (ApiKey::Produce as i16).to_be_bytes()
}

/// Handles one request frame (without its size prefix) of `session`; a
/// Produce request places its appends in `turn` (alone when `None`).
pub fn process(
    frame: Bytes,
    shared: Arc<Shared>,
    listener: Arc<KafkaListener>,
    client_host: Arc<str>,
    session: Arc<Session>,
    turn: Option<Turn>,
) -> Pending {
    let mut peek = frame.slice(..MIN_REQUEST);
    let (key, version, correlation_id) = (peek.get_i16(), peek.get_i16(), peek.get_i32());
    let span = tracing::debug_span!("request", api = key, version, correlation_id);
    match apis::versions(key) {
        Some((api, range)) if (range.min..=range.max).contains(&version) => {
            let started = std::time::Instant::now();
            let metrics = Arc::clone(&shared);
            let dispatched = apis::dispatch(api, version, frame, shared, listener, client_host, session, turn);
            Box::pin(
                async move {
                    let answered = dispatched.await;
                    let m = metrics.metrics();
                    m.request(api, version, started);
                    if answered.is_err() {
                        m.error(&format!("{api:?}"), version, "INVALID_REQUEST");
                    }
                    answered
                }
                .instrument(span),
            )
        }
        Some((ApiKey::Produce, _)) if apis::produce_v0::REFUSED.contains(&version) => {
            let refused = apis::produce_v0::refuse(correlation_id, version, frame.slice(MIN_REQUEST..));
            Box::pin(std::future::ready(refused.map(|r| r.map(Response::Whole))))
        }
        Some((ApiKey::ApiVersions, _)) => {
            tracing::debug!(parent: &span, "ApiVersions at an unsupported version; answering v0 with UNSUPPORTED_VERSION");
            Box::pin(std::future::ready(
                api_versions::unsupported_version(correlation_id).map(|r| Some(Response::Whole(r))),
            ))
        }
        _ => {
            let request = apis::versions(key).map_or_else(|| format!("api-{key}"), |(api, _)| format!("{api:?}"));
            // Unknown keys share one label value: a client cannot grow the series.
            let request = if apis::versions(key).is_some() { request } else { "unknown".to_owned() };
            shared.metrics().error(&request, version, "UNSUPPORTED_VERSION");
            tracing::info!(parent: &span, api = key, version, "unsupported API key or version; answering UNSUPPORTED_VERSION");
            Box::pin(std::future::ready(Ok(Some(Response::Whole(apis::unsupported_response(correlation_id))))))
        }
    }
}

/// Runs a connection inside a span naming the listener (the host's
/// connection span carries the peer): on `SASL_*` listeners, the
/// authentication phase first ([`crate::sasl::authenticate`]; the connection
/// ends there if it fails), then [`serve`]. `tls_role` is the role of the
/// client's verified TLS certificate, the session's on `SSL` listeners.
pub async fn serve_instrumented<S>(
    mut stream: S,
    shared: Arc<Shared>,
    listener: KafkaListener,
    client_host: Arc<str>,
    tls_role: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), HandlerError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let span = tracing::debug_span!("kafka", listener = %listener.name);
    async move {
        let session = if listener.security.is_sasl() {
            let authenticated = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                authenticated = crate::sasl::authenticate(&mut stream, &shared, &listener, &client_host) => authenticated?,
            };
            match authenticated {
                Some(session) => session,
                None => return Ok(()),
            }
        } else {
            if let Some(role) = &tls_role {
                tracing::debug!(role = %role, "client certificate verified");
            }
            Session::from_tls(tls_role)
        };
        serve(stream, shared, listener, client_host, Arc::new(session), shutdown).await
    }
    .instrument(span)
    .await
}
