//! Listeners and connections: the host binds each handler's addresses, accepts,
//! and runs every connection as its own task under a span, so that a handler
//! panic or error ends that connection alone.

use std::{
    net::SocketAddr,
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use abi_stable::std_types::{RErr, ROk};
use futures::FutureExt as _;
use polyport_handler_api::{ffi::FfiHandlerBox, raw_connection, tls_raw_connection};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::limits::{Admitted, Connections};

/// A handler that has been started, shared by its accept loops.
pub struct RunningHandler {
    /// The protocol name.
    pub protocol: String,
    /// The library it came from (file name, for logs).
    pub library: String,
    /// The handler object.
    pub handler: FfiHandlerBox,
}

/// One address bound for one handler listener.
pub struct BoundListener {
    /// The handler serving it.
    pub handler: Arc<RunningHandler>,
    /// The listener's name, as the handler declared it.
    pub name: String,
    /// The bound socket.
    pub listener: TcpListener,
    /// TLS, when the handler asked for it on this listener.
    pub tls: Option<crate::security::tls::Tls>,
}

impl BoundListener {
    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// Accepts until `shutdown` is cancelled; each connection is tracked by
/// `connections` and holds its place in `admitted` until it ends.
pub async fn accept_loop(
    bound: BoundListener,
    admitted: Arc<Connections>,
    shutdown: CancellationToken,
    connections: TaskTracker,
) {
    let BoundListener { handler, name, listener, tls } = bound;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(place) = admit(&admitted, &handler.protocol, peer) else { continue };
                let span = tracing::info_span!("conn", protocol = %handler.protocol, listener = %name, %peer);
                let serve = serve_connection(Arc::clone(&handler), name.clone(), stream, peer, tls.clone());
                connections.spawn(
                    async move {
                        serve.await;
                        drop(place);
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(protocol = %handler.protocol, listener = %name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracing::debug!(protocol = %handler.protocol, listener = %name, "listener closed");
}

/// A place for a connection from `peer`, or `None` (the connection is
/// closed at once) when a limit is reached. Refusals are logged at warn the
/// first time and then at every power of two, so a flood does not flood the
/// log too.
pub fn admit(admitted: &Arc<Connections>, protocol: &str, peer: SocketAddr) -> Option<Admitted> {
    static REFUSED: AtomicU64 = AtomicU64::new(0);
    match admitted.admit(peer.ip()) {
        Ok(place) => Some(place),
        Err(e) => {
            let n = REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(%protocol, %peer, refused = n, "connection refused: {e}");
            } else {
                tracing::debug!(%protocol, %peer, "connection refused: {e}");
            }
            None
        }
    }
}

async fn serve_connection(
    handler: Arc<RunningHandler>,
    listener: String,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<crate::security::tls::Tls>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::debug!("connection accepted");
    let raw = match tls {
        None => raw_connection(stream, peer.to_string(), local),
        Some(tls) => match tls.accept(stream).await {
            Ok(accepted) => {
                tracing::debug!(client_certificate = accepted.role.as_deref().unwrap_or("none"), "TLS established");
                tls_raw_connection(accepted.stream, peer.to_string(), local, accepted.role)
            }
            Err(reason) => {
                tracing::info!("connection closed: {reason}");
                return;
            }
        },
    };
    let future = match handler.handler.new_connection(listener.as_str().into(), raw) {
        ROk(future) => future,
        RErr(e) => {
            tracing::warn!(error = %e, "handler refused the connection");
            return;
        }
    };
    // async-ffi turns a panic inside the handler's poll into a panic here;
    // catching it keeps the worker thread and every other connection alive.
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(ROk(())) => tracing::debug!("connection closed"),
        Ok(RErr(e)) => {
            tracing::info!(error = %e, kind = %e.kind(), "connection closed by handler error")
        }
        Err(_) => {
            tracing::error!("handler panicked while serving this connection; connection closed")
        }
    }
}
