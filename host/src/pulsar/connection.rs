//! One Pulsar client connection: frames in, commands answered, messages out.
//!
//! `handle` dispatches each command to the module of its family: lookups
//! ([`super::lookup`]), producers and SENDs ([`super::produce`]), consumers,
//! acknowledgements and seeks ([`super::consume`]), schemas
//! ([`super::schema`]); CONNECT, PING and PONG are answered here, and any
//! other command is refused with an error naming it.
//!
//! A reader decodes frames and answers each command; everything the broker
//! sends (answers, receipts, dispatched messages) goes through one bounded
//! channel to a writer, so a slow client slows its own subscriptions and
//! nothing else. Producers append through a task each, which takes every
//! SEND queued meanwhile into one ledger append (one fsync for the burst) and
//! answers the receipts in order. Consumers are links into their
//! subscription's task ([`super::subscription`]).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use crate::pulsar::proto::{
    base_command::Type, AuthData, BaseCommand, CommandAuthChallenge, CommandAuthResponse, CommandConnect,
    CommandConnected, CommandError, CommandPing, CommandPong, CommandSuccess, ServerError,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter},
    sync::{mpsc, oneshot, Notify, Semaphore},
};

use super::{
    frame::{self, cmd, Frame, FrameError},
    lookup,
    outbox::Outbox,
    produce::{self, QueuedSend},
    schema,
    subscription::{ConsumerKey, SubCommand},
    PulsarService,
};
use crate::topics::TopicError;

/// The protocol version this broker speaks (the bundled proto's newest).
const PROTOCOL_VERSION: i32 = 19;
/// Pulsar's default keepalive interval.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(30);

/// A producer of this connection.
pub(super) struct Producer {
    /// To its append task.
    pub(super) sends: mpsc::Sender<QueuedSend>,
    /// Its name.
    pub(super) name: String,
    /// The topic epoch it was admitted with (exclusive modes).
    pub(super) epoch: Option<u64>,
    /// False while a WaitForExclusive producer waits for the topic.
    pub(super) admitted: Arc<std::sync::atomic::AtomicBool>,
    /// Cancelled when an exclusive producer fenced it.
    pub(super) fenced: tokio_util::sync::CancellationToken,
}

/// A consumer of this connection: its link to its subscription's task.
pub(super) struct Consumer {
    /// To the subscription's task.
    pub(super) subscription: mpsc::Sender<SubCommand>,
}

/// The state of one connection.
pub struct Connection {
    pub(super) service: Arc<PulsarService>,
    pub(super) id: u64,
    pub(super) out: Outbox,
    pub(super) producers: HashMap<u64, Producer>,
    pub(super) consumers: HashMap<u64, Consumer>,
    /// Bytes of SENDs received and not yet answered (`maxPendingBytesPerConnection`).
    pub(super) pending_sends: Arc<Semaphore>,
    pub(super) connected: bool,
    /// The SEND_ERROR code that fails one message of this client alone
    /// ([`produce::refusal_code`]).
    pub(super) refusal: ServerError,
    /// The role a verified TLS client certificate proves (the TLS provider).
    tls_role: Option<String>,
    /// The role CONNECT proved; `None`: anonymous (authentication off).
    pub(super) role: Option<String>,
    /// Renewing the credentials of a long-lived connection.
    auth: AuthRenewal,
}

/// Pulsar's refresh of expiring credentials: when the token CONNECT
/// proved expires, a client that announced `supports_auth_refresh` gets an
/// AUTH_CHALLENGE and has [`AUTH_REFRESH_TIMEOUT`] to answer with a new
/// token for the same role; any other client is disconnected then. A task
/// per connection keeps the time ([`renew_credentials`]), so that the
/// reader is never interrupted in the middle of a frame.
#[derive(Debug)]
struct AuthRenewal {
    method: String,
    /// When the current credentials expire; a refresh sends the new time.
    expires: tokio::sync::watch::Sender<Option<tokio::time::Instant>>,
    /// Notified when the connection must end.
    expired: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Default for AuthRenewal {
    fn default() -> Self {
        Self {
            method: String::new(),
            expires: tokio::sync::watch::channel(None).0,
            expired: Arc::new(Notify::new()),
            task: None,
        }
    }
}

impl Drop for AuthRenewal {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// How long a client has to answer AUTH_CHALLENGE.
const AUTH_REFRESH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn instant_of(at: Option<std::time::SystemTime>) -> Option<tokio::time::Instant> {
    at.map(|at| {
        let left = at.duration_since(std::time::SystemTime::now()).unwrap_or_default();
        tokio::time::Instant::now() + left
    })
}

/// Challenges the client when its credentials expire, or ends the
/// connection (`expired`) when it cannot refresh them or does not in time.
async fn renew_credentials(
    mut expires: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>,
    out: Outbox,
    method: String,
    supports_refresh: bool,
    expired: Arc<Notify>,
) {
    loop {
        let at = *expires.borrow_and_update();
        let Some(at) = at else {
            if expires.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            changed = expires.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            () = tokio::time::sleep_until(at) => {}
        }
        if !supports_refresh {
            tracing::info!(%method, "credentials expired and the client cannot refresh them; closing");
            expired.notify_one();
            return;
        }
        let challenge = cmd(Type::AuthChallenge, |c| {
            c.auth_challenge = Some(CommandAuthChallenge {
                server_version: Some(format!("Polyport {}", env!("CARGO_PKG_VERSION"))),
                challenge: Some(AuthData {
                    auth_method_name: Some(method.clone()),
                    auth_data: Some(b"refresh".to_vec()),
                }),
                protocol_version: Some(PROTOCOL_VERSION),
            })
        });
        if out.send(frame::command(&challenge)).await.is_err() {
            return;
        }
        tracing::debug!("credentials expired: AUTH_CHALLENGE sent");
        tokio::select! {
            changed = expires.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(AUTH_REFRESH_TIMEOUT) => {
                tracing::info!("no AUTH_RESPONSE to the credentials' refresh in time; closing");
                expired.notify_one();
                return;
            }
        }
    }
}

/// How long a failed authentication waits before its answer.
const AUTH_FAILURE_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

pub(super) fn error(request_id: u64, error: ServerError, message: impl Into<String>) -> BaseCommand {
    cmd(Type::Error, |c| c.error = Some(CommandError { request_id, error: error as i32, message: message.into() }))
}

pub(super) fn success(request_id: u64) -> BaseCommand {
    cmd(Type::Success, |c| c.success = Some(CommandSuccess { request_id, schema: None }))
}

pub(super) fn topic_error(e: &TopicError) -> ServerError {
    match e {
        TopicError::NotFound(_) | TopicError::NamespaceNotFound(_) => ServerError::TopicNotFound,
        TopicError::InvalidName(_) | TopicError::Invalid(_) => ServerError::InvalidTopicName,
        TopicError::Metadata(_) => ServerError::MetadataError,
        // Retried by clients after a new lookup, which names the owner.
        TopicError::NotServed(_) => ServerError::ServiceNotReady,
        // The object store is unreachable for a restore, or a newer owner began: retried.
        TopicError::Tiering(_) => ServerError::ServiceNotReady,
        _ => ServerError::PersistenceError,
    }
}

/// Serves one connection until the client closes it or a frame is malformed.
pub async fn serve<S>(service: Arc<PulsarService>, id: u64, stream: S, tls_role: Option<String>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read_half, write_half) = tokio::io::split(stream);
    let pending_bytes = service.limits.max_pending_bytes_per_connection;
    let (out, outgoing) = Outbox::new(pending_bytes);
    let writer = tokio::spawn(write_loop(outgoing, write_half));
    let keepalive = Keepalive::start(out.clone());
    let limit = service.max_message_size + frame::FRAME_PADDING;
    // At least one SEND of the largest size fits.
    let pending_sends = Arc::new(Semaphore::new(pending_bytes.max(limit).min(Semaphore::MAX_PERMITS)));
    let mut conn = Connection {
        service,
        id,
        out,
        producers: HashMap::new(),
        consumers: HashMap::new(),
        pending_sends,
        connected: false,
        refusal: ServerError::NotAllowedError,
        tls_role,
        role: None,
        auth: AuthRenewal::default(),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    loop {
        let expired = Arc::clone(&conn.auth.expired);
        let read = tokio::select! {
            read = frame::read(&mut reader, limit) => read,
            () = keepalive.dead.notified() => {
                tracing::info!("no frame and no PONG for two keepalive intervals: closing");
                break;
            }
            () = expired.notified() => break,
        };
        match read {
            Ok(Some(frame)) => {
                keepalive.heard();
                if !conn.handle(frame).await {
                    break;
                }
            }
            Ok(None) => break,
            Err(FrameError::Io(e)) => {
                tracing::debug!(error = %e, "connection read ended");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "closing the connection");
                break;
            }
        }
    }
    keepalive.task.abort();
    conn.close().await;
    drop(conn);
    let _ = writer.await;
}

/// Writes what is queued for the connection: every frame waiting, then one
/// flush.
async fn write_loop<W: AsyncWrite + Unpin>(mut outgoing: mpsc::Receiver<super::outbox::Queued>, write_half: W) {
    let mut w = BufWriter::with_capacity(64 * 1024, write_half);
    while let Some(queued) = outgoing.recv().await {
        if w.write_all(&queued.frame).await.is_err() {
            return;
        }
        while let Ok(queued) = outgoing.try_recv() {
            if w.write_all(&queued.frame).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
}

/// Pulsar's keepalive: a connection silent for an interval gets a PING; one
/// still silent an interval later is closed (a dead peer that is never
/// written to would otherwise hold its subscriptions forever).
struct Keepalive {
    origin: std::time::Instant,
    /// Milliseconds from `origin` to the last frame received.
    last_frame: Arc<AtomicU64>,
    /// Notified when the peer is taken for dead.
    dead: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Keepalive {
    fn start(out: Outbox) -> Self {
        let origin = std::time::Instant::now();
        let last_frame = Arc::new(AtomicU64::new(0));
        let dead = Arc::new(Notify::new());
        let (heard, notify) = (Arc::clone(&last_frame), Arc::clone(&dead));
        let task = tokio::spawn(async move {
            let mut pinged = false;
            loop {
                tokio::time::sleep(KEEPALIVE).await;
                let idle = (origin.elapsed().as_millis() as u64).saturating_sub(heard.load(Ordering::Relaxed));
                if idle < KEEPALIVE.as_millis() as u64 {
                    pinged = false;
                } else if pinged {
                    notify.notify_one();
                    return;
                } else {
                    let ping = cmd(Type::Ping, |c| c.ping = Some(CommandPing {}));
                    if out.send(frame::command(&ping)).await.is_err() {
                        return;
                    }
                    pinged = true;
                }
            }
        });
        Self { origin, last_frame, dead, task }
    }

    /// A frame came in.
    fn heard(&self) {
        self.last_frame.store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl Connection {
    /// The broker-wide key of this connection's consumer `consumer_id`.
    pub(super) fn consumer_key(&self, consumer_id: u64) -> ConsumerKey {
        ConsumerKey { connection: self.id, consumer: consumer_id }
    }

    pub(super) async fn send(&self, command: BaseCommand) {
        let _ = self.out.send(frame::command(&command)).await;
    }

    /// Sends a request to consumer `consumer_id`'s subscription and waits
    /// for its answer.
    pub(super) async fn ask<T>(
        &self,
        consumer_id: u64,
        request: impl FnOnce(oneshot::Sender<Result<T, String>>) -> SubCommand,
    ) -> Result<T, String> {
        let c = self.consumers.get(&consumer_id).ok_or_else(|| format!("no consumer {consumer_id}"))?;
        let (tx, rx) = oneshot::channel();
        c.subscription.send(request(tx)).await.map_err(|_| "subscription closed".to_owned())?;
        rx.await.unwrap_or_else(|_| Err("subscription closed".into()))
    }

    async fn close(&mut self) {
        let connection = self.id;
        for (consumer, link) in self.consumers.drain() {
            let _ = link.subscription.send(SubCommand::Remove(ConsumerKey { connection, consumer })).await;
        }
        self.producers.clear();
    }

    /// Answers one frame; false ends the connection.
    /// Answers one frame; false ends the connection (a command without its
    /// body is malformed).
    async fn handle(&mut self, frame: Frame) -> bool {
        let Frame { command: c, message } = frame;
        let kind = Type::try_from(c.r#type).ok();
        if !self.connected && kind != Some(Type::Connect) {
            tracing::warn!(command = c.r#type, "command before CONNECT: closing");
            return false;
        }
        // The command's body, or the connection ends.
        macro_rules! body {
            ($field:expr) => {
                match $field {
                    Some(body) => body,
                    None => return false,
                }
            };
        }
        match kind {
            Some(Type::Connect) => return self.connect(body!(c.connect)).await,
            Some(Type::AuthResponse) => return self.auth_response(body!(c.auth_response)),
            Some(Type::Ping) => self.send(cmd(Type::Pong, |c| c.pong = Some(CommandPong {}))).await,
            Some(Type::Pong) => {}
            Some(Type::PartitionedMetadata) => {
                let m = body!(c.partition_metadata);
                self.send(lookup::partitioned_metadata(&self.service, self.role.as_deref(), m).await).await;
            }
            Some(Type::Lookup) => {
                let l = body!(c.lookup_topic);
                self.send(lookup::lookup(&self.service, self.role.as_deref(), &l).await).await;
            }
            Some(Type::GetTopicsOfNamespace) => {
                let g = body!(c.get_topics_of_namespace);
                self.send(lookup::topics_of_namespace(&self.service, self.role.as_deref(), &g).await).await;
            }
            Some(Type::Producer) => self.create_producer(body!(c.producer)).await,
            Some(Type::Send) => {
                let Some(section) = message else {
                    tracing::warn!("SEND without a message: closing");
                    return false;
                };
                return self.queue_send(body!(c.send), section).await;
            }
            Some(Type::CloseProducer) => self.close_producer(body!(c.close_producer)).await,
            Some(Type::Subscribe) => self.subscribe_command(body!(c.subscribe)).await,
            Some(Type::Flow) => self.flow(body!(c.flow)).await,
            Some(Type::Ack) => self.ack(body!(c.ack)).await,
            Some(Type::RedeliverUnacknowledgedMessages) => {
                self.redeliver(body!(c.redeliver_unacknowledged_messages)).await;
            }
            Some(Type::CloseConsumer) => self.close_consumer(body!(c.close_consumer)).await,
            Some(Type::Unsubscribe) => self.unsubscribe(body!(c.unsubscribe)).await,
            Some(Type::Seek) => self.seek(body!(c.seek)).await,
            Some(Type::GetLastMessageId) => self.last_message_id(body!(c.get_last_message_id)).await,
            Some(Type::GetSchema) => self.send(schema::get_schema(&body!(c.get_schema))).await,
            Some(Type::GetOrCreateSchema) => {
                self.send(schema::get_or_create_schema(&body!(c.get_or_create_schema))).await;
            }
            _ => self.refuse(kind, &c).await,
        }
        true
    }

    /// CONNECT: the credentials, when authentication is on; the protocol
    /// version both speak and the largest message. False: the credentials
    /// prove nothing, the client has its AuthenticationError, and the
    /// connection ends.
    async fn connect(&mut self, connect: CommandConnect) -> bool {
        let version = connect.protocol_version.unwrap_or(0).min(PROTOCOL_VERSION);
        tracing::debug!(client = %connect.client_version, version, "CONNECT");
        if self.connected {
            tracing::warn!("a second CONNECT: closing");
            return false;
        }
        if self.service.authenticator.enabled() {
            match self.authenticate(&connect) {
                Ok((role, expires)) => {
                    tracing::debug!(%role, "authenticated");
                    self.role = Some(role);
                    if let Some(at) = instant_of(expires) {
                        let method = connect.auth_method_name.clone().unwrap_or_default();
                        let refresh = connect.feature_flags.and_then(|f| f.supports_auth_refresh).unwrap_or(false);
                        self.auth.method.clone_from(&method);
                        self.auth.expires.send_replace(Some(at));
                        let watch = self.auth.expires.subscribe();
                        let expired = Arc::clone(&self.auth.expired);
                        self.auth.task =
                            Some(tokio::spawn(renew_credentials(watch, self.out.clone(), method, refresh, expired)));
                    }
                }
                Err(e) => {
                    let method = connect.auth_method_name.as_deref().unwrap_or("none");
                    tracing::info!(%method, reason = e.reason(), "authentication failed; closing");
                    // A failure costs the client its connection and this
                    // long: guessing is slow.
                    tokio::time::sleep(AUTH_FAILURE_DELAY).await;
                    // Pulsar answers with request id -1.
                    self.send(error(u64::MAX, ServerError::AuthenticationError, e.to_string())).await;
                    return false;
                }
            }
        }
        self.connected = true;
        self.refusal = produce::refusal_code(&connect.client_version);
        let connected = cmd(Type::Connected, |c| {
            c.connected = Some(CommandConnected {
                server_version: format!("Polyport {}", env!("CARGO_PKG_VERSION")),
                protocol_version: Some(version),
                max_message_size: Some(self.service.max_message_size as i32),
            })
        });
        self.send(connected).await;
        true
    }

    /// The role CONNECT's credentials prove: `token` with its JWT, or
    /// `tls` with the connection's verified client certificate.
    fn authenticate(
        &self,
        connect: &CommandConnect,
    ) -> Result<(String, Option<std::time::SystemTime>), crate::security::AuthError> {
        use crate::security::AuthError;
        let authenticator = &self.service.authenticator;
        match connect.auth_method_name.as_deref().unwrap_or_default() {
            "" | "none" => Err(AuthError::new("this broker requires authentication (token or tls)")),
            "tls" if authenticator.tls_provider() => {
                self.tls_role.clone().map(|role| (role, None)).ok_or_else(|| {
                    AuthError::new("method tls needs a TLS connection with a trusted client certificate")
                })
            }
            method => authenticator.authenticate_until(method, connect.auth_data.as_deref().unwrap_or_default()),
        }
    }

    /// AUTH_RESPONSE: new credentials, which must prove the same role.
    fn auth_response(&mut self, response: CommandAuthResponse) -> bool {
        let data = response.response.unwrap_or_default();
        let method = data.auth_method_name.unwrap_or_else(|| self.auth.method.clone());
        match self.service.authenticator.authenticate_until(&method, data.auth_data.as_deref().unwrap_or_default()) {
            Ok((role, expires)) if Some(&role) == self.role.as_ref() => {
                tracing::debug!(%role, "credentials refreshed");
                self.auth.expires.send_replace(instant_of(expires));
                true
            }
            Ok((role, _)) => {
                tracing::info!(%role, "refreshed credentials prove another role; closing");
                false
            }
            Err(e) => {
                tracing::info!(%method, reason = e.reason(), "credentials refresh failed; closing");
                false
            }
        }
    }

    /// Any other command: never silence, an error naming it, on its request
    /// id when it has one.
    async fn refuse(&self, kind: Option<Type>, command: &BaseCommand) {
        let request_id = request_id_of(command).unwrap_or(0);
        let name = kind.map_or_else(|| format!("type {}", command.r#type), |k| format!("{k:?}"));
        tracing::info!(command = %name, "unsupported Pulsar command");
        let message = format!("{name} is not supported by this broker");
        self.send(error(request_id, ServerError::NotAllowedError, message)).await;
    }
}

fn request_id_of(c: &BaseCommand) -> Option<u64> {
    c.get_schema
        .as_ref()
        .map(|x| x.request_id)
        .or(c.get_or_create_schema.as_ref().map(|x| x.request_id))
        .or(c.consumer_stats.as_ref().map(|x| x.request_id))
        .or(c.new_txn.as_ref().map(|x| x.request_id))
        .or(c.add_partition_to_txn.as_ref().map(|x| x.request_id))
        .or(c.add_subscription_to_txn.as_ref().map(|x| x.request_id))
        .or(c.end_txn.as_ref().map(|x| x.request_id))
        .or(c.end_txn_on_partition.as_ref().map(|x| x.request_id))
        .or(c.end_txn_on_subscription.as_ref().map(|x| x.request_id))
        .or(c.tc_client_connect_request.as_ref().map(|x| x.request_id))
}
