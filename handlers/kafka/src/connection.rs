//! One Kafka connection: size-prefixed frames in, responses out, in order.
//!
//! A frame whose size is negative, too small for a request header, or above
//! `kafkaMaxRequestBytes` ends the connection (the stream cannot be
//! resynchronised); so does a body that does not decode. An API key or version
//! we do not serve is answered and the connection goes on.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use polyport_handler_api::{ErrorKind, HandlerError};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    sync::watch,
};
use tracing::Instrument;

use crate::{
    apis::{self, api_versions, BrokerInfo},
    listeners::KafkaListener,
    ProtocolError,
};

/// Smallest request: api key, api version, correlation id.
const MIN_REQUEST: usize = 8;

/// What every connection of a handler shares.
#[derive(Debug)]
pub struct Shared {
    /// This broker.
    pub broker: BrokerInfo,
    /// `kafkaMaxRequestBytes`.
    pub max_request_bytes: usize,
}

/// Serves `stream` until the client closes it, a frame is malformed, or
/// `shutdown` turns true (checked between requests).
pub async fn serve<S>(
    stream: S,
    shared: Arc<Shared>,
    listener: KafkaListener,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), HandlerError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let size = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            size = stream.read_i32() => match size {
                Ok(size) => size,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.into()),
            },
        };
        let size = match usize::try_from(size) {
            Ok(n) if (MIN_REQUEST..=shared.max_request_bytes).contains(&n) => n,
            _ => {
                tracing::warn!(
                    size,
                    limit = shared.max_request_bytes,
                    "invalid request size (kafkaMaxRequestBytes); closing connection"
                );
                return Err(HandlerError::new(ErrorKind::PROTOCOL, format!("invalid request size {size}")));
            }
        };
        let mut frame = BytesMut::zeroed(size);
        stream.read_exact(&mut frame).await?;
        let response = match process(frame.freeze(), &shared, &listener) {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(error = %e, "malformed request; closing connection");
                return Err(HandlerError::new(ErrorKind::PROTOCOL, e.to_string()));
            }
        };
        stream.write_all(&response).await?;
    }
}

/// Handles one request frame (without its size prefix).
pub fn process(mut frame: Bytes, shared: &Shared, listener: &KafkaListener) -> Result<BytesMut, ProtocolError> {
    let mut peek = frame.slice(..MIN_REQUEST);
    let (key, version, correlation_id) = (peek.get_i16(), peek.get_i16(), peek.get_i32());
    let span = tracing::debug_span!("request", api = key, version, correlation_id);
    let _entered = span.enter();
    match apis::versions(key) {
        Some((api, range)) if (range.min..=range.max).contains(&version) => {
            tracing::trace!(?api, "dispatch");
            apis::dispatch(api, version, &mut frame, listener, &shared.broker)
        }
        Some((ApiKey::ApiVersions, _)) => {
            tracing::debug!("ApiVersions at an unsupported version; answering v0 with UNSUPPORTED_VERSION");
            api_versions::unsupported_version(correlation_id)
        }
        _ => {
            tracing::info!(api = key, version, "unsupported API key or version; answering UNSUPPORTED_VERSION");
            Ok(apis::unsupported_response(correlation_id))
        }
    }
}

/// Runs [`serve`] inside a span naming the listener (the host's connection span
/// carries the peer).
pub async fn serve_instrumented<S>(
    stream: S,
    shared: Arc<Shared>,
    listener: KafkaListener,
    shutdown: watch::Receiver<bool>,
) -> Result<(), HandlerError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let span = tracing::debug_span!("kafka", listener = %listener.name);
    serve(stream, shared, listener, shutdown).instrument(span).await
}
