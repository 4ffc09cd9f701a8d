//! The host services as a handler uses them.

use std::{
    future::Future,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use abi_stable::std_types::RStr;
use async_ffi::FutureExt;
use tokio::sync::oneshot;

use crate::{
    ffi::{FfiHostBox, FfiJoinHandleBox, LogLevel},
    ErrorKind, HandlerError,
};

/// The host's services: the only way a handler reaches the runtime, timers and
/// (in later versions) storage. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct Host {
    inner: FfiHostBox,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Host")
    }
}

impl Host {
    /// Wraps the host's service object.
    pub fn from_ffi(inner: FfiHostBox) -> Self {
        Self { inner }
    }

    /// The raw service object, for code that forwards it (e.g. the log bridge).
    pub fn as_ffi(&self) -> &FfiHostBox {
        &self.inner
    }

    /// Spawns `future` on the host's runtime. `name` labels it in logs.
    ///
    /// This is the replacement for `tokio::spawn`, which cannot work inside a
    /// handler library (tokio's runtime context does not cross the boundary).
    pub fn spawn<F, T>(&self, name: &str, future: F) -> JoinHandle<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let task = async move {
            let value = future.await;
            // The receiver is gone when the JoinHandle was dropped: nothing to report.
            let _ = tx.send(value);
        }
        .into_ffi();
        let handle = self.inner.spawn(RStr::from_str(name), task);
        JoinHandle { handle, rx }
    }

    /// Completes after `duration`.
    pub async fn sleep(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.inner.sleep(nanos).await;
    }

    /// Runs `future` for at most `duration`; `None` if the time ran out first.
    pub async fn timeout<F: Future>(&self, duration: Duration, future: F) -> Option<F::Output> {
        tokio::select! {
            value = future => Some(value),
            () = self.sleep(duration) => None,
        }
    }

    /// Wall-clock time.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.inner.now_unix_nanos())
    }

    /// Monotonic time since an arbitrary origin fixed for the process.
    pub fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.inner.monotonic_nanos())
    }

    /// Writes one record to the host's log stream. Handlers usually log with
    /// `tracing` instead: from `start` on, handler-api forwards those events here
    /// (as target `handler`, the handler's own target in a `target` field).
    pub fn log(&self, level: LogLevel, target: &str, message: &str) {
        self.inner.log(level, RStr::from_str(target), RStr::from_str(message));
    }

    /// The most verbose level the host will keep; more verbose records are dropped
    /// before they cross the boundary.
    pub fn max_log_level(&self) -> LogLevel {
        self.inner.max_log_level()
    }
}

/// A task spawned with [`Host::spawn`]. Dropping it detaches the task.
pub struct JoinHandle<T> {
    handle: FfiJoinHandleBox,
    rx: oneshot::Receiver<T>,
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle").field("finished", &self.handle.is_finished()).finish()
    }
}

impl<T> JoinHandle<T> {
    /// Requests cancellation: the task stops at its next await point.
    pub fn abort(&self) {
        self.handle.abort();
    }

    /// Whether the task has completed.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the task and returns its output; an error if it was aborted or panicked.
    pub async fn join(self) -> Result<T, HandlerError> {
        self.handle.join().await.into_result()?;
        self.rx.await.map_err(|_| HandlerError::new(ErrorKind::CANCELLED, "task ended without a result"))
    }
}
