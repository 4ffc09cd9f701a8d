//! SASL authentication on `SASL_PLAINTEXT` and `SASL_SSL` listeners, as
//! Kafka's `SaslServerAuthenticator` runs it (KIP-43, KIP-152).
//!
//! Before a connection's pipelined loop starts ([`crate::connection::serve`]),
//! it reads frames one at a time: the 4-byte size, then exactly that many
//! bytes, so nothing the client sends after its last authentication frame is
//! read ahead of the loop. It accepts, in order:
//!
//! 1. ApiVersions, any number of times, answered as usual (it lists
//!    SaslHandshake and SaslAuthenticate);
//! 2. one SaslHandshake ([`sasl_handshake`]) naming an enabled mechanism;
//!    another mechanism is answered UNSUPPORTED_SASL_MECHANISM and the
//!    connection closes;
//! 3. after a v1 handshake, SaslAuthenticate requests ([`sasl_authenticate`]);
//!    after a v0 handshake, raw SASL tokens (size-prefixed, no Kafka header,
//!    answered the same way), until the host's exchange is done.
//!
//! The host runs the mechanism ([`Host::sasl_server`]): the handler carries
//! bytes and never looks at them, so no credential is ever logged. Any other
//! request before authentication ends is logged at info and the connection
//! closes, as Kafka closes it. A failed step is answered
//! SASL_AUTHENTICATION_FAILED with the host's message (v0: no answer) after
//! [`FAILED_AUTHENTICATION_DELAY`], and the connection closes.
//!
//! Frames are at most [`MAX_RECEIVE_BYTES`] (and `kafkaMaxRequestBytes`) and
//! their buffers grow with the bytes that arrive, so an unauthenticated
//! client holds little memory.
//!
//! Gaps: no re-authentication (KIP-368; `session_lifetime_ms` is 0), no
//! GSSAPI (the host offers no Kerberos), no limit on how long a client may
//! take to authenticate (Kafka has none either before
//! `connections.max.idle.ms`), and no principal builder: the role is the
//! host's.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use kafka_protocol::{
    messages::{ApiKey, RequestHeader, SaslAuthenticateRequest, SaslHandshakeRequest},
    protocol::Decodable,
};
use polyport_handler_api::{AuthenticationInfo, Config, ErrorKind, HandlerError, Host, SaslServer, SaslStep};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{
    apis::{encode_response, sasl_authenticate, sasl_handshake},
    connection::{self, Shared, MIN_REQUEST},
    listeners::KafkaListener,
    session::Session,
    ProtocolError,
};

/// KoP's key: the mechanisms `SASL_*` listeners may offer.
pub const ALLOWED_MECHANISMS_KEY: &str = "saslAllowedMechanisms";
/// KoP's default for [`ALLOWED_MECHANISMS_KEY`].
pub const DEFAULT_ALLOWED_MECHANISMS: &str = "PLAIN";
/// The largest frame read before authentication ends (Kafka's
/// `sasl.server.max.receive.size`).
pub const MAX_RECEIVE_BYTES: usize = 512 * 1024;
/// How long a failed authentication waits before its answer and the close
/// (Kafka's `connection.failed.authentication.delay.ms`), which slows down
/// password guessing.
pub const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);
/// A frame's buffer before its bytes arrive.
const INITIAL_CAPACITY: usize = 4 * 1024;
/// Sent instead of an error's message when the error is the broker's, not
/// the credentials' (its message may say more than a client should read).
const INTERNAL_FAILURE: &str = "Authentication failed: the broker could not check the credentials";

/// One SASL exchange: the host's [`SaslServer`], or a test's stand-in.
pub trait SaslExchange: Send {
    /// Gives the exchange the client's next message.
    fn step<'a>(
        &'a mut self,
        response: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Result<SaslStep, HandlerError>> + Send + 'a>>;
}

impl SaslExchange for SaslServer {
    fn step<'a>(
        &'a mut self,
        response: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Result<SaslStep, HandlerError>> + Send + 'a>> {
        Box::pin(SaslServer::step(self, response))
    }
}

/// Where exchanges come from: the host's providers ([`Host::sasl_server`]).
pub trait SaslProvider: Send + Sync + std::fmt::Debug {
    /// Starts an exchange of `mechanism`.
    fn server(&self, mechanism: &str) -> Result<Box<dyn SaslExchange>, HandlerError>;
}

impl SaslProvider for Host {
    fn server(&self, mechanism: &str) -> Result<Box<dyn SaslExchange>, HandlerError> {
        Ok(Box::new(self.sasl_server(mechanism)?))
    }
}

/// SASL as the handler's `SASL_*` listeners serve it.
#[derive(Debug, Clone)]
pub struct Sasl {
    /// The mechanisms enabled, in `saslAllowedMechanisms` order.
    pub mechanisms: Vec<String>,
    /// Where exchanges come from.
    pub provider: Arc<dyn SaslProvider>,
}

/// Reads `saslAllowedMechanisms`: a comma-separated list of SASL mechanism
/// names (RFC 4422: 1 to 20 upper-case letters, digits, `-` or `_`).
pub fn allowed_mechanisms(config: &Config) -> Result<Vec<String>, HandlerError> {
    let raw = config.get(ALLOWED_MECHANISMS_KEY).unwrap_or(DEFAULT_ALLOWED_MECHANISMS);
    let mut mechanisms: Vec<String> = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let valid = name.len() <= 20
            && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            return Err(HandlerError::config(
                ALLOWED_MECHANISMS_KEY,
                raw,
                "a comma-separated list of SASL mechanism names in upper case, e.g. PLAIN,OAUTHBEARER",
            ));
        }
        if !mechanisms.iter().any(|m| m == name) {
            mechanisms.push(name.to_owned());
        }
    }
    Ok(mechanisms)
}

/// The mechanisms the `SASL_*` listeners among `listeners` serve: those
/// `allowed` that the host's authentication offers. Empty without such a
/// listener; an error (kind CONFIG) when they would have nothing to serve.
pub fn enabled_mechanisms(
    listeners: &[KafkaListener],
    allowed: &[String],
    auth: &AuthenticationInfo,
) -> Result<Vec<String>, HandlerError> {
    let Some(listener) = listeners.iter().find(|l| l.security.is_sasl()) else {
        return Ok(Vec::new());
    };
    if !auth.enabled {
        return Err(HandlerError::new(
            ErrorKind::CONFIG,
            format!(
                "Kafka listener {} uses {}, which needs the broker's authentication: set \
                 authenticationEnabled=true and authenticationProviders",
                listener.name, listener.security
            ),
        ));
    }
    let offered: Vec<&str> = auth.sasl_mechanisms.iter().map(|m| m.as_str()).collect();
    let (enabled, refused): (Vec<&String>, Vec<&String>) = allowed.iter().partition(|m| offered.contains(&m.as_str()));
    if enabled.is_empty() {
        return Err(HandlerError::config(
            ALLOWED_MECHANISMS_KEY,
            &allowed.join(","),
            &format!(
                "at least one mechanism that the broker's authenticationProviders offer ({})",
                if offered.is_empty() { "none".to_owned() } else { offered.join(",") }
            ),
        ));
    }
    if !refused.is_empty() {
        tracing::warn!(
            refused = %refused.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","),
            offered = %offered.join(","),
            "saslAllowedMechanisms names mechanisms that no authentication provider offers; they are not served"
        );
    }
    Ok(enabled.into_iter().cloned().collect())
}

/// Where the exchange stands.
enum Phase {
    /// Before the handshake: ApiVersions and SaslHandshake.
    Handshake,
    /// After a v1 handshake: SaslAuthenticate requests.
    Authenticate(Box<dyn SaslExchange>, String),
    /// After a v0 handshake: raw tokens, size-prefixed, without a header.
    Tokens(Box<dyn SaslExchange>, String),
}

/// Runs the authentication phase on `stream`: the client's session once it
/// is authenticated, `None` when the connection is to close (the client
/// left, failed or broke the protocol; logged here). `Err` is for I/O errors
/// and malformed requests, as in [`connection::serve`].
pub async fn authenticate<S>(
    stream: &mut S,
    shared: &Arc<Shared>,
    listener: &KafkaListener,
    client_host: &Arc<str>,
) -> Result<Option<Session>, HandlerError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let limit = shared.max_request_bytes.min(MAX_RECEIVE_BYTES);
    let mut phase = Phase::Handshake;
    loop {
        phase = match phase {
            Phase::Handshake => {
                let Some(frame) = read_frame(stream, MIN_REQUEST, limit).await? else { return Ok(None) };
                let (key, version, correlation_id) = peek(&frame);
                match ApiKey::try_from(key) {
                    Ok(ApiKey::ApiVersions) => {
                        let listener = Arc::new(listener.clone());
                        let anonymous = Arc::new(Session::anonymous());
                        let answer = connection::process(
                            frame,
                            Arc::clone(shared),
                            listener,
                            Arc::clone(client_host),
                            anonymous,
                            None,
                        )
                        .await
                        .map_err(protocol_error)?;
                        if let Some(answer) = answer {
                            for chunk in answer.chunks() {
                                stream.write_all(chunk).await?;
                            }
                            stream.flush().await?;
                        }
                        Phase::Handshake
                    }
                    Ok(ApiKey::SaslHandshake) if version_served(sasl_handshake::VERSIONS, version) => {
                        match handshake(stream, shared, frame, version, correlation_id).await? {
                            Some((exchange, mechanism)) if version == 0 => Phase::Tokens(exchange, mechanism),
                            Some((exchange, mechanism)) => Phase::Authenticate(exchange, mechanism),
                            None => return Ok(None),
                        }
                    }
                    _ => return Ok(refuse(key, version, "before the SASL handshake")),
                }
            }
            Phase::Authenticate(mut exchange, mechanism) => {
                let Some(frame) = read_frame(stream, MIN_REQUEST, limit).await? else { return Ok(None) };
                let (key, version, correlation_id) = peek(&frame);
                if key != ApiKey::SaslAuthenticate as i16 || !version_served(sasl_authenticate::VERSIONS, version) {
                    return Ok(refuse(key, version, "during SASL authentication"));
                }
                let mut body = frame;
                let request =
                    RequestHeader::decode(&mut body, ApiKey::SaslAuthenticate.request_header_version(version))
                        .and_then(|_| SaslAuthenticateRequest::decode(&mut body, version))
                        .map_err(|e| protocol_error(ProtocolError::decode(e)))?;
                match exchange.step(&request.auth_bytes).await {
                    Ok(SaslStep::Challenge(challenge)) => {
                        let answer = sasl_authenticate::step(challenge);
                        send(stream, &encode_response(correlation_id, version, &answer).map_err(protocol_error)?)
                            .await?;
                        Phase::Authenticate(exchange, mechanism)
                    }
                    Ok(SaslStep::Done { role, username, final_message }) => {
                        let answer = sasl_authenticate::step(final_message);
                        send(stream, &encode_response(correlation_id, version, &answer).map_err(protocol_error)?)
                            .await?;
                        return Ok(Some(authenticated(role, username, &mechanism)));
                    }
                    Err(e) => {
                        let message = failure_message(&e, &mechanism);
                        failure_delay(shared).await;
                        let answer = sasl_authenticate::failed(message);
                        send(stream, &encode_response(correlation_id, version, &answer).map_err(protocol_error)?)
                            .await?;
                        return Ok(None);
                    }
                }
            }
            Phase::Tokens(mut exchange, mechanism) => {
                let Some(token) = read_frame(stream, 0, limit).await? else { return Ok(None) };
                match exchange.step(&token).await {
                    Ok(SaslStep::Challenge(challenge)) => {
                        send(stream, &size_prefixed(&challenge)?).await?;
                        Phase::Tokens(exchange, mechanism)
                    }
                    // Kafka answers the last token too, empty for PLAIN; clients wait for it.
                    Ok(SaslStep::Done { role, username, final_message }) => {
                        send(stream, &size_prefixed(&final_message)?).await?;
                        return Ok(Some(authenticated(role, username, &mechanism)));
                    }
                    // No header, so no error response: the close says it, as in Kafka.
                    Err(e) => {
                        let _ = failure_message(&e, &mechanism);
                        failure_delay(shared).await;
                        return Ok(None);
                    }
                }
            }
        };
    }
}

/// Answers a SaslHandshake in the handshake phase: the exchange to run and
/// its mechanism, or `None` when the connection is to close.
async fn handshake<S>(
    stream: &mut S,
    shared: &Shared,
    mut frame: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<Option<(Box<dyn SaslExchange>, String)>, HandlerError>
where
    S: AsyncWrite + Unpin,
{
    let request = RequestHeader::decode(&mut frame, ApiKey::SaslHandshake.request_header_version(version))
        .and_then(|_| SaslHandshakeRequest::decode(&mut frame, version))
        .map_err(|e| protocol_error(ProtocolError::decode(e)))?;
    let sasl = shared.sasl.get();
    let enabled = sasl.map_or(&[][..], |s| s.mechanisms.as_slice());
    let (answer, chosen) = sasl_handshake::negotiate(&request, enabled);
    let answer = encode_response(correlation_id, version, &answer).map_err(protocol_error)?;
    let (Some(sasl), Some(mechanism)) = (sasl, chosen) else {
        tracing::info!(
            mechanism = %request.mechanism.as_str(),
            enabled = %enabled.join(","),
            "SASL mechanism not enabled; answering UNSUPPORTED_SASL_MECHANISM and closing the connection"
        );
        failure_delay(shared).await;
        send(stream, &answer).await?;
        return Ok(None);
    };
    // Started before the answer, so that a host refusing it closes the
    // connection instead of accepting a mechanism it will not run.
    let exchange = match sasl.provider.server(mechanism) {
        Ok(exchange) => exchange,
        Err(e) => {
            tracing::warn!(mechanism, error = %e, "cannot start a SASL exchange; closing the connection");
            return Ok(None);
        }
    };
    tracing::debug!(mechanism, version, "SASL handshake");
    send(stream, &answer).await?;
    Ok(Some((exchange, mechanism.to_owned())))
}

/// The session of a finished exchange, logged (the role and user name are
/// no secrets; the credentials never reach this module's logs).
fn authenticated(role: String, username: String, mechanism: &str) -> Session {
    tracing::debug!(role = %role, username = %username, mechanism, "SASL authentication succeeded");
    Session::from_sasl(role, username)
}

/// Logs a failed step and returns what the client may read of it.
fn failure_message<'e>(e: &'e HandlerError, mechanism: &str) -> &'e str {
    if e.kind() == ErrorKind::AUTHENTICATION {
        tracing::info!(mechanism, error = %e.message(), "SASL authentication failed; closing the connection");
        e.message()
    } else {
        tracing::warn!(mechanism, error = %e, "SASL exchange failed on the broker's side; closing the connection");
        INTERNAL_FAILURE
    }
}

/// Waits [`FAILED_AUTHENTICATION_DELAY`] (not without a host: the in-process
/// benchmark has no clock to wait on).
async fn failure_delay(shared: &Shared) {
    if let Some(host) = shared.host.get() {
        host.sleep(FAILED_AUTHENTICATION_DELAY).await;
    }
}

/// Logs a request that has no place in the authentication phase; the
/// connection closes, as Kafka closes it (ILLEGAL_SASL_STATE).
fn refuse(key: i16, version: i16, when: &str) -> Option<Session> {
    tracing::info!(api = key, version, "request not allowed {when} (ILLEGAL_SASL_STATE); closing the connection");
    None
}

fn version_served(range: kafka_protocol::protocol::VersionRange, version: i16) -> bool {
    (range.min..=range.max).contains(&version)
}

/// A request frame's api key, version and correlation id (it has at least
/// [`MIN_REQUEST`] bytes).
fn peek(frame: &[u8]) -> (i16, i16, i32) {
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    (key, version, correlation_id)
}

fn protocol_error(e: ProtocolError) -> HandlerError {
    match &e {
        ProtocolError::Encode(_) => tracing::error!(error = %e, "cannot encode a response (a bug); closing connection"),
        _ => tracing::warn!(error = %e, "malformed request during SASL authentication; closing connection"),
    }
    HandlerError::new(ErrorKind::PROTOCOL, e.to_string())
}

fn size_prefixed(token: &[u8]) -> Result<Vec<u8>, HandlerError> {
    let size = i32::try_from(token.len())
        .map_err(|_| HandlerError::new(ErrorKind::PROTOCOL, "SASL token larger than a frame"))?;
    let mut out = Vec::with_capacity(4 + token.len());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(token);
    Ok(out)
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), HandlerError> {
    stream.write_all(bytes).await?;
    stream.flush().await?;
    Ok(())
}

/// Reads one frame of `min..=max` bytes: its size, then exactly that many
/// bytes, into a buffer that grows as they arrive. `None` at a clean end of
/// stream; a size out of range ends the connection, as in
/// [`connection::serve`].
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    min: usize,
    max: usize,
) -> Result<Option<Bytes>, HandlerError> {
    let size = match reader.read_i32().await {
        Ok(size) => size,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let size = match usize::try_from(size) {
        Ok(n) if (min..=max).contains(&n) => n,
        _ => {
            tracing::warn!(size, limit = max, "invalid frame size during SASL authentication; closing connection");
            return Err(HandlerError::new(ErrorKind::PROTOCOL, format!("invalid request size {size}")));
        }
    };
    Ok(Some(connection::read_body(reader, size, INITIAL_CAPACITY).await?.freeze()))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use kafka_protocol::{
        messages::{
            ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, RequestHeader, ResponseHeader,
            SaslAuthenticateResponse, SaslHandshakeResponse,
        },
        protocol::{Encodable, HeaderVersion, StrBytes},
    };
    use polyport_handler_api::testing::MemoryHost;
    use tokio::io::DuplexStream;

    use super::*;
    use crate::{errors, listeners::SecurityProtocol};

    /// Two mechanisms the way the host runs them: PLAIN in one step
    /// (`\0user\0token:good` passes), and a SCRAM-like exchange of one
    /// challenge (`proof` passes).
    #[derive(Debug)]
    struct Stub;

    struct StubExchange {
        mechanism: String,
        steps: u32,
    }

    fn refused() -> HandlerError {
        HandlerError::new(ErrorKind::AUTHENTICATION, "Authentication failed: invalid credentials")
    }

    impl SaslProvider for Stub {
        fn server(&self, mechanism: &str) -> Result<Box<dyn SaslExchange>, HandlerError> {
            Ok(Box::new(StubExchange { mechanism: mechanism.to_owned(), steps: 0 }))
        }
    }

    impl SaslExchange for StubExchange {
        fn step<'a>(
            &'a mut self,
            response: &'a [u8],
        ) -> Pin<Box<dyn Future<Output = Result<SaslStep, HandlerError>> + Send + 'a>> {
            self.steps += 1;
            let step = match (self.mechanism.as_str(), self.steps) {
                ("PLAIN", 1) => {
                    let parts: Vec<&[u8]> = response.split(|b| *b == 0).collect();
                    match parts[..] {
                        [_, user, b"token:good"] => Ok(SaslStep::Done {
                            role: "alice".into(),
                            username: String::from_utf8_lossy(user).into_owned(),
                            final_message: Vec::new(),
                        }),
                        _ => Err(refused()),
                    }
                }
                ("SCRAM-SHA-256", 1) => Ok(SaslStep::Challenge(b"r=nonce".to_vec())),
                ("SCRAM-SHA-256", 2) if response == b"proof" => Ok(SaslStep::Done {
                    role: "bob".into(),
                    username: "bob".into(),
                    final_message: b"v=signature".to_vec(),
                }),
                _ => Err(refused()),
            };
            Box::pin(std::future::ready(step))
        }
    }

    fn shared(host: &MemoryHost) -> Arc<Shared> {
        let shared = Shared::for_tests();
        let mechanisms = vec!["PLAIN".to_owned(), "SCRAM-SHA-256".to_owned()];
        shared.sasl.set(Sasl { mechanisms, provider: Arc::new(Stub) }).expect("unset");
        shared.host.set(host.host()).expect("unset");
        Arc::new(shared)
    }

    fn listener() -> KafkaListener {
        KafkaListener {
            name: "SASL_PLAINTEXT".into(),
            bind: "0.0.0.0:9094".into(),
            advertised_host: "h".into(),
            advertised_port: 9094,
            security: SecurityProtocol::SaslPlaintext,
        }
    }

    async fn send_request<R: Encodable + HeaderVersion>(io: &mut DuplexStream, key: ApiKey, version: i16, body: &R) {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(11)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut out = bytes::BytesMut::new();
        header.encode(&mut out, key.request_header_version(version)).expect("header");
        body.encode(&mut out, version).expect("body");
        let size = i32::try_from(out.len()).expect("small");
        io.write_all(&size.to_be_bytes()).await.expect("write");
        io.write_all(&out).await.expect("write");
    }

    /// The next frame's bytes; `None` once the server closed the connection.
    async fn read_raw(io: &mut DuplexStream) -> Option<Vec<u8>> {
        let size = io.read_i32().await.ok()?;
        let mut body = vec![0; usize::try_from(size).expect("size")];
        io.read_exact(&mut body).await.expect("body");
        Some(body)
    }

    async fn read_response<R: Decodable>(io: &mut DuplexStream, key: ApiKey, version: i16) -> R {
        let mut frame = Bytes::from(read_raw(io).await.expect("a response"));
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version)).expect("header");
        assert_eq!(header.correlation_id, 11);
        let body = R::decode(&mut frame, version).expect("body");
        assert!(frame.is_empty(), "{key:?} v{version}: trailing bytes");
        body
    }

    async fn handshake(io: &mut DuplexStream, version: i16, mechanism: &'static str) -> SaslHandshakeResponse {
        let request = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        send_request(io, ApiKey::SaslHandshake, version, &request).await;
        read_response(io, ApiKey::SaslHandshake, version).await
    }

    async fn sasl_authenticate(io: &mut DuplexStream, version: i16, bytes: &[u8]) -> SaslAuthenticateResponse {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(bytes));
        send_request(io, ApiKey::SaslAuthenticate, version, &request).await;
        read_response(io, ApiKey::SaslAuthenticate, version).await
    }

    /// Runs the authentication phase against `client`; its session.
    async fn phase<F: Future<Output = ()>>(client: impl FnOnce(DuplexStream) -> F) -> Option<Session> {
        let host = MemoryHost::new();
        let shared = shared(&host);
        let (client_io, mut server_io) = tokio::io::duplex(1 << 20);
        let server = async {
            let session = authenticate(&mut server_io, &shared, &listener(), &"/127.0.0.1".into()).await;
            drop(server_io);
            session
        };
        let (session, ()) = tokio::join!(server, client(client_io));
        session.expect("no I/O or protocol error")
    }

    #[tokio::test]
    async fn handshake_v1_then_sasl_authenticate_proves_a_role() {
        let session = phase(|mut io| async move {
            send_request(&mut io, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
            let versions: ApiVersionsResponse = read_response(&mut io, ApiKey::ApiVersions, 3).await;
            let listed =
                |key: ApiKey| versions.api_keys.iter().find(|k| k.api_key == key as i16).map(|k| k.max_version);
            assert_eq!((listed(ApiKey::SaslHandshake), listed(ApiKey::SaslAuthenticate)), (Some(1), Some(2)));
            let answer = handshake(&mut io, 1, "PLAIN").await;
            assert_eq!(answer.error_code, errors::NONE);
            let listed: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            assert_eq!(listed, ["PLAIN", "SCRAM-SHA-256"]);
            let answer = sasl_authenticate(&mut io, 2, b"\0public/default\0token:good").await;
            assert_eq!((answer.error_code, answer.session_lifetime_ms), (errors::NONE, 0));
            assert!(answer.auth_bytes.is_empty());
        })
        .await;
        assert_eq!(session, Some(Session::from_sasl("alice".into(), "public/default".into())));
    }

    #[tokio::test]
    async fn challenges_go_to_the_client_until_the_exchange_is_done() {
        let session = phase(|mut io| async move {
            assert_eq!(handshake(&mut io, 1, "SCRAM-SHA-256").await.error_code, errors::NONE);
            let challenge = sasl_authenticate(&mut io, 1, b"n,,n=bob,r=client").await;
            assert_eq!((challenge.error_code, &challenge.auth_bytes[..]), (errors::NONE, &b"r=nonce"[..]));
            let last = sasl_authenticate(&mut io, 0, b"proof").await;
            assert_eq!((last.error_code, &last.auth_bytes[..]), (errors::NONE, &b"v=signature"[..]));
        })
        .await;
        assert_eq!(session.and_then(|s| s.role).as_deref(), Some("bob"));
    }

    #[tokio::test]
    async fn a_failed_step_is_answered_after_the_delay_and_closes() {
        let session = phase(|mut io| async move {
            assert_eq!(handshake(&mut io, 1, "PLAIN").await.error_code, errors::NONE);
            let sent = Instant::now();
            let answer = sasl_authenticate(&mut io, 2, b"\0public/default\0token:bad").await;
            assert!(sent.elapsed() >= FAILED_AUTHENTICATION_DELAY, "answered after {:?}", sent.elapsed());
            assert_eq!(answer.error_code, errors::SASL_AUTHENTICATION_FAILED);
            assert_eq!(answer.error_message.as_deref(), Some("Authentication failed: invalid credentials"));
            assert_eq!(read_raw(&mut io).await, None, "closed");
        })
        .await;
        assert_eq!(session, None);
    }

    #[tokio::test]
    async fn handshake_v0_is_followed_by_raw_tokens() {
        let session = phase(|mut io| async move {
            assert_eq!(handshake(&mut io, 0, "PLAIN").await.error_code, errors::NONE);
            let token = b"\0public/default\0token:good";
            io.write_all(&i32::try_from(token.len()).expect("small").to_be_bytes()).await.expect("write");
            io.write_all(token).await.expect("write");
            // Kafka answers PLAIN's token with an empty one; clients wait for it.
            assert_eq!(read_raw(&mut io).await, Some(Vec::new()));
        })
        .await;
        assert_eq!(session.and_then(|s| s.role).as_deref(), Some("alice"));

        let session = phase(|mut io| async move {
            assert_eq!(handshake(&mut io, 0, "SCRAM-SHA-256").await.error_code, errors::NONE);
            io.write_all(&[0, 0, 0, 3, b'n', b',', b',']).await.expect("write");
            assert_eq!(read_raw(&mut io).await.as_deref(), Some(&b"r=nonce"[..]));
            io.write_all(&[0, 0, 0, 5, b'w', b'r', b'o', b'n', b'g']).await.expect("write");
            // No header to answer with: the close says it.
            assert_eq!(read_raw(&mut io).await, None);
        })
        .await;
        assert_eq!(session, None);
    }

    #[tokio::test]
    async fn unsupported_mechanisms_are_answered_with_the_list_and_closed() {
        let session = phase(|mut io| async move {
            let answer = handshake(&mut io, 1, "GSSAPI").await;
            assert_eq!((answer.error_code, answer.mechanisms.len()), (errors::UNSUPPORTED_SASL_MECHANISM, 2));
            assert_eq!(read_raw(&mut io).await, None);
        })
        .await;
        assert_eq!(session, None);
    }

    #[tokio::test]
    async fn other_requests_before_authentication_close_the_connection() {
        let session = phase(|mut io| async move {
            send_request(&mut io, ApiKey::Metadata, 12, &MetadataRequest::default()).await;
            assert_eq!(read_raw(&mut io).await, None);
        })
        .await;
        assert_eq!(session, None);
        let session = phase(|mut io| async move {
            assert_eq!(handshake(&mut io, 1, "PLAIN").await.error_code, errors::NONE);
            send_request(&mut io, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
            assert_eq!(read_raw(&mut io).await, None);
        })
        .await;
        assert_eq!(session, None);
    }

    #[tokio::test]
    async fn frames_before_authentication_are_bounded() {
        let host = MemoryHost::new();
        let shared = shared(&host);
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let size = i32::try_from(MAX_RECEIVE_BYTES + 1).expect("small");
        client.write_all(&size.to_be_bytes()).await.expect("write");
        let outcome = authenticate(&mut server, &shared, &listener(), &"/127.0.0.1".into()).await;
        assert_eq!(outcome.expect_err("too large").kind(), ErrorKind::PROTOCOL);
    }

    /// After authentication, the pipelined loop serves requests, and refuses
    /// a second handshake (no re-authentication).
    #[tokio::test]
    async fn the_loop_runs_once_authenticated() {
        let host = MemoryHost::new();
        let shared = shared(&host);
        let (mut io, server_io) = tokio::io::duplex(1 << 20);
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let server = connection::serve_instrumented(server_io, shared, listener(), "/127.0.0.1".into(), None, shutdown);
        let client = async move {
            assert_eq!(handshake(&mut io, 1, "PLAIN").await.error_code, errors::NONE);
            let answer = sasl_authenticate(&mut io, 2, b"\0public/default\0token:good").await;
            assert_eq!(answer.error_code, errors::NONE);
            send_request(&mut io, ApiKey::ApiVersions, 0, &ApiVersionsRequest::default()).await;
            let versions: ApiVersionsResponse = read_response(&mut io, ApiKey::ApiVersions, 0).await;
            assert_eq!(versions.error_code, errors::NONE);
            assert_eq!(handshake(&mut io, 1, "PLAIN").await.error_code, errors::ILLEGAL_SASL_STATE);
            let again = sasl_authenticate(&mut io, 2, b"\0public/default\0token:good").await;
            assert_eq!(again.error_code, errors::ILLEGAL_SASL_STATE);
        };
        let (served, ()) = tokio::join!(server, client);
        served.expect("clean close");
    }

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    fn auth(enabled: bool, mechanisms: &[&str]) -> AuthenticationInfo {
        AuthenticationInfo {
            enabled,
            sasl_mechanisms: mechanisms.iter().map(|m| (*m).into()).collect(),
            ..AuthenticationInfo::default()
        }
    }

    #[test]
    fn allowed_mechanisms_default_to_plain() {
        assert_eq!(allowed_mechanisms(&config(&[])).expect("default"), ["PLAIN"]);
        let listed = allowed_mechanisms(&config(&[(ALLOWED_MECHANISMS_KEY, " PLAIN, OAUTHBEARER,PLAIN,")]));
        assert_eq!(listed.expect("valid"), ["PLAIN", "OAUTHBEARER"]);
        for bad in ["plain", "PLAIN;OAUTHBEARER", "A-MECHANISM-NAME-TOO-LONG"] {
            let err = allowed_mechanisms(&config(&[(ALLOWED_MECHANISMS_KEY, bad)])).expect_err(bad);
            assert!(err.message().contains(ALLOWED_MECHANISMS_KEY), "{err}");
        }
    }

    #[test]
    fn enabled_mechanisms_are_allowed_and_offered() {
        let sasl = [listener()];
        let allowed = ["PLAIN".to_owned(), "SCRAM-SHA-512".to_owned(), "OAUTHBEARER".to_owned()];
        let enabled = enabled_mechanisms(&sasl, &allowed, &auth(true, &["OAUTHBEARER", "PLAIN"]));
        assert_eq!(enabled.expect("some"), ["PLAIN", "OAUTHBEARER"]);

        let err = enabled_mechanisms(&sasl, &allowed, &auth(false, &[])).expect_err("authentication off");
        assert_eq!(err.kind(), ErrorKind::CONFIG);
        assert!(err.message().contains("authenticationEnabled=true"), "{err}");
        assert!(err.message().contains("authenticationProviders"), "{err}");
        assert!(err.message().contains("SASL_PLAINTEXT"), "{err}");

        let err = enabled_mechanisms(&sasl, &allowed[1..2], &auth(true, &["PLAIN"])).expect_err("none offered");
        assert_eq!(err.kind(), ErrorKind::CONFIG);
        assert!(err.message().contains(ALLOWED_MECHANISMS_KEY) && err.message().contains("PLAIN"), "{err}");

        // Without a SASL listener, authentication is not needed.
        let plain = [KafkaListener { security: SecurityProtocol::Ssl, ..listener() }];
        assert_eq!(enabled_mechanisms(&plain, &allowed, &auth(false, &[])).expect("no SASL"), Vec::<String>::new());
    }
}
