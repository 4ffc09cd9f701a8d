//! The host services lent to handlers, one module per service, each
//! implementing its ABI trait once: the runtime here ([`FfiHost`]: tasks,
//! timers, clocks, logs, and the getters of the others), topics in
//! `topics` ([`FfiTopics`](polyport_handler_api::storage::FfiTopics)),
//! partition handles in `partition`
//! ([`FfiPartition`](polyport_handler_api::storage::FfiPartition)), and
//! conversion in [`crate::convert`].
//!
//! They must never panic (a panic here would cross an `extern "C"` boundary
//! and abort) and must work from any thread, so each one enters the runtime
//! explicitly (`on_runtime`).

use std::{
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RErr, ROk, RResult, RSlice, RStr, RString, RVec},
};
use async_ffi::{FfiFuture, FutureExt as _};
use futures::FutureExt as _;
use polyport_handler_api::{
    convert::{FfiConversionBox, FfiConversion_TO},
    ffi::{FfiHost, FfiHostBox, FfiHost_TO, FfiJoinHandle, FfiJoinHandleBox, FfiJoinHandle_TO, LogLevel},
    storage::{FfiTopicsBox, FfiTopics_TO},
    ErrorKind, HandlerError,
};
use tracing::{Instrument, Level};

use crate::topics::Topics;

mod auth;
mod errors;
mod partition;
mod topics;

/// The host side of [`FfiHost`]: the runtime service, and the others'
/// objects its getters hand out.
#[derive(Clone)]
pub struct HostServices {
    runtime: tokio::runtime::Handle,
    origin: Instant,
    max_log_level: LogLevel,
    topics: FfiTopicsBox,
    /// The topic service, for a handler's own copy ([`HostServices::for_protocol`]).
    topic_service: topics::TopicService,
    conversion: FfiConversionBox,
    authenticator: Arc<crate::security::Authenticator>,
    authorizer: Arc<crate::security::authz::Authorizer>,
    admin: Arc<auth::Admin>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl HostServices {
    /// Services running on `runtime`, keeping handler logs down to `max_log_level`.
    // Each argument is a service shared with other parts of the broker.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        runtime: tokio::runtime::Handle,
        max_log_level: LogLevel,
        topics: Arc<Topics>,
        advertised_address: String,
        converters: Arc<crate::convert::Converters>,
        authenticator: Arc<crate::security::Authenticator>,
        authorizer: Arc<crate::security::authz::Authorizer>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let conversion = crate::convert::ConversionService::new(runtime.clone(), Arc::clone(&converters));
        let admin = Arc::new(auth::Admin {
            runtime: runtime.clone(),
            topics: Arc::clone(&topics),
            authorizer: Arc::clone(&authorizer),
        });
        let meters = partition::Meters { metrics: Arc::clone(&metrics), protocol: "handler".into() };
        let topic_service = topics::TopicService::new(runtime.clone(), topics, advertised_address, converters, meters);
        Self {
            runtime,
            origin: Instant::now(),
            max_log_level,
            topics: FfiTopics_TO::from_ptr(RArc::new(topic_service.clone()), TD_Opaque),
            topic_service,
            metrics,
            conversion: FfiConversion_TO::from_ptr(RArc::new(conversion), TD_Opaque),
            authenticator,
            admin,
            authorizer,
        }
    }

    /// The services for the handler of `protocol`: the cursors it opens are
    /// marked as its own (subscription listings say so).
    pub fn for_protocol(&self, protocol: &str) -> Self {
        let mut services = self.clone();
        services.topics = FfiTopics_TO::from_ptr(RArc::new(self.topic_service.for_protocol(protocol)), TD_Opaque);
        services
    }

    /// The services as the ABI object handed to handlers.
    pub fn into_ffi(self) -> FfiHostBox {
        FfiHost_TO::from_ptr(RArc::new(self), TD_Opaque)
    }
}

/// Builds `f`'s future inside `runtime` (so that it may create timers and
/// tasks whichever thread calls) and returns it as an FFI future.
pub(crate) fn on_runtime<T, F>(
    runtime: &tokio::runtime::Handle,
    f: impl FnOnce() -> F,
) -> FfiFuture<RResult<T, HandlerError>>
where
    F: std::future::Future<Output = Result<T, HandlerError>> + Send + 'static,
    T: Send + 'static,
{
    let _guard = runtime.enter();
    let future = f();
    async move { RResult::from(future.await) }.into_ffi()
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

    fn topics(&self) -> FfiTopicsBox {
        self.topics.clone()
    }

    fn conversion(&self) -> FfiConversionBox {
        self.conversion.clone()
    }

    fn authenticate(&self, method: RStr<'_>, data: RSlice<'_, u8>) -> FfiFuture<RResult<RString, HandlerError>> {
        auth::authenticate(&self.authenticator, method.as_str(), data.as_slice())
    }

    fn authentication(&self) -> polyport_handler_api::AuthenticationInfo {
        auth::info(&self.authenticator)
    }

    fn authorize(
        &self,
        role: RStr<'_>,
        operation: polyport_handler_api::storage::Operation,
        topic: RStr<'_>,
    ) -> FfiFuture<RResult<bool, HandlerError>> {
        auth::authorize(&self.runtime, &self.authorizer, role.as_str(), operation, topic.as_str())
    }

    fn authorization_enabled(&self) -> bool {
        self.authorizer.enabled()
    }

    fn scram_users(
        &self,
        role: RStr<'_>,
        users: RVec<RString>,
    ) -> FfiFuture<RResult<RVec<RResult<polyport_handler_api::ScramUser, HandlerError>>, HandlerError>> {
        auth::scram_users(&self.admin, role.as_str(), users.into_iter().map(RString::into_string).collect())
    }

    fn alter_scram(
        &self,
        role: RStr<'_>,
        changes: RVec<polyport_handler_api::ScramChange>,
    ) -> FfiFuture<RResult<RVec<RResult<(), HandlerError>>, HandlerError>> {
        auth::alter_scram(&self.admin, role.as_str(), changes.into_vec())
    }

    fn grants(
        &self,
        role: RStr<'_>,
        namespace: RStr<'_>,
    ) -> FfiFuture<RResult<RVec<polyport_handler_api::Grant>, HandlerError>> {
        auth::grants(&self.admin, role.as_str(), namespace.as_str())
    }

    fn set_grant(&self, role: RStr<'_>, grant: polyport_handler_api::Grant) -> FfiFuture<RResult<(), HandlerError>> {
        auth::set_grant(&self.admin, role.as_str(), grant)
    }

    fn sasl_server(
        &self,
        mechanism: RStr<'_>,
    ) -> RResult<polyport_handler_api::security::FfiSaslServerBox, HandlerError> {
        auth::sasl_server(&self.runtime, &self.authenticator, mechanism.as_str())
    }

    fn counter(
        &self,
        name: RStr<'_>,
        help: RStr<'_>,
        labels: RVec<abi_stable::std_types::Tuple2<RString, RString>>,
    ) -> RResult<polyport_handler_api::ffi::FfiCounterBox, HandlerError> {
        let labels: Vec<(String, String)> =
            labels.into_iter().map(|t| (t.0.into_string(), t.1.into_string())).collect();
        self.metrics
            .handlers
            .counter(name.as_str(), help.as_str(), &labels)
            .map(|series| {
                polyport_handler_api::ffi::FfiCounter_TO::from_ptr(RArc::new(CounterSeries(series)), TD_Opaque)
            })
            .into()
    }

    fn metric(
        &self,
        spec: polyport_handler_api::MetricSpec,
    ) -> RResult<polyport_handler_api::metrics::FfiMetricBox, HandlerError> {
        self.metrics.handlers.declare(spec).into()
    }

    fn collector(
        &self,
        spec: polyport_handler_api::MetricSpec,
        collector: polyport_handler_api::metrics::FfiCollectorBox,
    ) -> RResult<(), HandlerError> {
        self.metrics.handlers.add_collector(spec, collector).into()
    }
}

/// The 0.2 counter slot's handle over a metric series.
struct CounterSeries(polyport_handler_api::metrics::FfiSeriesBox);

impl polyport_handler_api::ffi::FfiCounter for CounterSeries {
    fn add(&self, value: u64) {
        self.0.add(value as f64);
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
