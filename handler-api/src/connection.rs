//! The connection a handler serves: a host-owned socket behind the
//! [`RawConnection`] ABI, wrapped so handler code reads like ordinary tokio code.

use std::{
    io,
    mem::MaybeUninit,
    pin::Pin,
    task::{Context, Poll},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, ROption, RResult, RSlice, RSliceMut, RString},
};
use async_ffi::{ContextExt, FfiContext, FfiPoll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::ffi::{RawConnection, RawConnectionBox, RawConnection_TO};

/// A connection accepted by the host on one of the handler's listeners.
///
/// Implements tokio's [`AsyncRead`] and [`AsyncWrite`]: use
/// `tokio::io::AsyncReadExt`/`AsyncWriteExt` (feature `io-util`), `BufReader`, or a
/// framed codec. Dropping it closes the socket.
pub struct Connection {
    raw: RawConnectionBox,
    peer: String,
    local: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("peer", &self.peer).field("local", &self.local).finish()
    }
}

// The connection is never pinned structurally: every poll goes through
// `&mut self.raw`, so moving a `Connection` between polls is sound.
impl Unpin for Connection {}

impl Connection {
    /// Wraps the host's raw connection.
    pub fn from_raw(raw: RawConnectionBox) -> Self {
        let peer = raw.peer_addr().into_string();
        let local = raw.local_addr().into_string();
        Self { raw, peer, local }
    }

    /// The remote address (`ip:port`).
    pub fn peer_addr(&self) -> &str {
        &self.peer
    }

    /// The local address the connection was accepted on (`ip:port`).
    pub fn local_addr(&self) -> &str {
        &self.local
    }

    /// Whether the host terminated TLS for this connection.
    pub fn is_tls(&self) -> bool {
        self.raw.is_tls()
    }

    /// The role the client's verified TLS certificate proves (its subject's
    /// common name), if it sent one.
    pub fn tls_role(&self) -> Option<String> {
        self.raw.tls_role().into_option().map(RString::into_string)
    }
}

fn from_ffi<T>(poll: FfiPoll<RResult<T, abi_stable::std_types::RIoError>>) -> Poll<io::Result<T>> {
    match poll {
        FfiPoll::Ready(ROk(v)) => Poll::Ready(Ok(v)),
        FfiPoll::Ready(RErr(e)) => Poll::Ready(Err(e.into())),
        FfiPoll::Pending => Poll::Pending,
        FfiPoll::Panicked => Poll::Ready(Err(io::Error::other("host connection poll panicked"))),
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // SAFETY: the host only writes into the slice (a socket read) and
        // never de-initialises it; only the `n` bytes it reports are assumed
        // initialised below. Zeroing the spare capacity instead cost 6 % of
        // the broker's CPU at 1 GB/s of 1 MiB requests.
        let slice = unsafe { buf.unfilled_mut() };
        let cap = slice.len();
        let poll = cx.with_ffi_context(|fcx| this.raw.poll_read_uninit(fcx, RSliceMut::from_mut_slice(slice)));
        match from_ffi(poll) {
            Poll::Ready(Ok(n)) if n <= cap => {
                // SAFETY: the host wrote these `n` bytes.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(n)) => {
                Poll::Ready(Err(io::Error::other(format!("host reported {n} bytes read into {cap}"))))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        from_ffi(cx.with_ffi_context(|fcx| this.raw.poll_write(fcx, RSlice::from_slice(buf))))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        from_ffi(cx.with_ffi_context(|fcx| this.raw.poll_flush(fcx)))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        from_ffi(cx.with_ffi_context(|fcx| this.raw.poll_shutdown(fcx)))
    }
}

/// Any tokio byte stream as a [`RawConnectionBox`]: the host uses this for its
/// sockets, and benchmarks use it to run a handler in-process.
pub fn raw_connection<T>(io: T, peer_addr: String, local_addr: String) -> RawConnectionBox
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    RawConnection_TO::from_value(
        IoConnection { io, peer: peer_addr.into(), local: local_addr.into(), tls: false, tls_role: ROption::RNone },
        TD_Opaque,
    )
}

/// A byte stream the host decrypted (it terminated TLS) as a
/// [`RawConnectionBox`], with the role of the client's verified certificate.
pub fn tls_raw_connection<T>(io: T, peer_addr: String, local_addr: String, tls_role: Option<String>) -> RawConnectionBox
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let tls_role = tls_role.map(RString::from).into();
    RawConnection_TO::from_value(
        IoConnection { io, peer: peer_addr.into(), local: local_addr.into(), tls: true, tls_role },
        TD_Opaque,
    )
}

/// Adapts a tokio byte stream to the [`RawConnection`] ABI.
struct IoConnection<T> {
    io: T,
    peer: RString,
    local: RString,
    tls: bool,
    tls_role: ROption<RString>,
}

fn to_ffi<T>(poll: Poll<io::Result<T>>) -> FfiPoll<RResult<T, abi_stable::std_types::RIoError>> {
    match poll {
        Poll::Ready(Ok(v)) => FfiPoll::Ready(ROk(v)),
        Poll::Ready(Err(e)) => FfiPoll::Ready(RErr(e.into())),
        Poll::Pending => FfiPoll::Pending,
    }
}

impl<T> RawConnection for IoConnection<T>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    fn poll_read(
        &mut self,
        cx: &mut FfiContext<'_>,
        mut buf: RSliceMut<'_, u8>,
    ) -> FfiPoll<RResult<usize, abi_stable::std_types::RIoError>> {
        let mut read_buf = ReadBuf::new(buf.as_mut_slice());
        let poll = cx.with_context(|cx| Pin::new(&mut self.io).poll_read(cx, &mut read_buf));
        let n = read_buf.filled().len();
        to_ffi(poll.map_ok(|()| n))
    }

    fn poll_read_uninit(
        &mut self,
        cx: &mut FfiContext<'_>,
        mut buf: RSliceMut<'_, MaybeUninit<u8>>,
    ) -> FfiPoll<RResult<usize, abi_stable::std_types::RIoError>> {
        let mut read_buf = ReadBuf::uninit(buf.as_mut_slice());
        let poll = cx.with_context(|cx| Pin::new(&mut self.io).poll_read(cx, &mut read_buf));
        let n = read_buf.filled().len();
        to_ffi(poll.map_ok(|()| n))
    }

    fn poll_write(
        &mut self,
        cx: &mut FfiContext<'_>,
        buf: RSlice<'_, u8>,
    ) -> FfiPoll<RResult<usize, abi_stable::std_types::RIoError>> {
        to_ffi(cx.with_context(|cx| Pin::new(&mut self.io).poll_write(cx, buf.as_slice())))
    }

    fn poll_flush(&mut self, cx: &mut FfiContext<'_>) -> FfiPoll<RResult<(), abi_stable::std_types::RIoError>> {
        to_ffi(cx.with_context(|cx| Pin::new(&mut self.io).poll_flush(cx)))
    }

    fn poll_shutdown(&mut self, cx: &mut FfiContext<'_>) -> FfiPoll<RResult<(), abi_stable::std_types::RIoError>> {
        to_ffi(cx.with_context(|cx| Pin::new(&mut self.io).poll_shutdown(cx)))
    }

    fn peer_addr(&self) -> RString {
        self.peer.clone()
    }

    fn local_addr(&self) -> RString {
        self.local.clone()
    }

    fn is_tls(&self) -> bool {
        self.tls
    }

    fn tls_role(&self) -> ROption<RString> {
        self.tls_role.clone()
    }
}
