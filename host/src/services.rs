//! The host services lent to handlers ([`FfiHost`]). They must never panic
//! (a panic here would cross an `extern "C"` boundary and abort) and must work
//! from any thread, so each one enters the runtime explicitly.

use std::{
    panic::AssertUnwindSafe,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RErr, ROk, RResult, RStr},
};
use async_ffi::{FfiFuture, FutureExt as _};
use futures::FutureExt as _;
use polyport_handler_api::{
    ffi::{FfiHost, FfiHostBox, FfiHost_TO, FfiJoinHandle, FfiJoinHandleBox, FfiJoinHandle_TO, LogLevel},
    ErrorKind, HandlerError,
};
use tracing::{Instrument, Level};

/// The host side of [`FfiHost`].
#[derive(Clone)]
pub struct HostServices {
    runtime: tokio::runtime::Handle,
    origin: Instant,
    max_log_level: LogLevel,
}

impl HostServices {
    /// Services running on `runtime`, keeping handler logs down to `max_log_level`.
    pub fn new(runtime: tokio::runtime::Handle, max_log_level: LogLevel) -> Self {
        Self { runtime, origin: Instant::now(), max_log_level }
    }

    /// The services as the ABI object handed to handlers.
    pub fn into_ffi(self) -> FfiHostBox {
        FfiHost_TO::from_ptr(RArc::new(self), TD_Opaque)
    }
}

impl FfiHost for HostServices {
    fn spawn(&self, name: RStr<'_>, task: FfiFuture<()>) -> FfiJoinHandleBox {
        // Tasks inherit the caller's span (the connection's), plus their name.
        let span = tracing::info_span!(parent: tracing::Span::current(), "task", name = %name.as_str());
        let handle = self.runtime.spawn(task.instrument(span));
        FfiJoinHandle_TO::from_value(HostJoinHandle { handle }, TD_Opaque)
    }

    fn sleep(&self, nanos: u64) -> FfiFuture<()> {
        let _guard = self.runtime.enter();
        tokio::time::sleep(Duration::from_nanos(nanos)).into_ffi()
    }

    fn now_unix_nanos(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn monotonic_nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn max_log_level(&self) -> LogLevel {
        self.max_log_level
    }

    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        let (target, message) = (target.as_str(), message.as_str());
        // `tracing` needs the level and target at compile time: the handler's
        // own target travels as a field.
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(target: "handler", $level, target = target, "{message}")
            };
        }
        match level {
            LogLevel::Trace => emit!(Level::TRACE),
            LogLevel::Debug => emit!(Level::DEBUG),
            LogLevel::Info => emit!(Level::INFO),
            LogLevel::Warn => emit!(Level::WARN),
            LogLevel::Error => emit!(Level::ERROR),
        }
    }
}

/// The host side of [`FfiJoinHandle`].
struct HostJoinHandle {
    handle: tokio::task::JoinHandle<()>,
}

impl FfiJoinHandle for HostJoinHandle {
    fn abort(&self) {
        self.handle.abort();
    }

    fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    fn join(self) -> FfiFuture<RResult<(), HandlerError>> {
        AssertUnwindSafe(self.handle)
            .map(|result| match result {
                Ok(()) => ROk(()),
                Err(e) if e.is_cancelled() => RErr(HandlerError::new(ErrorKind::CANCELLED, "task was aborted")),
                Err(e) => RErr(HandlerError::new(ErrorKind::PANICKED, format!("task panicked: {e}"))),
            })
            .into_ffi()
    }
}
