//! The host services lent to handlers ([`FfiHost`]). They must never panic
//! (a panic here would cross an `extern "C"` boundary and abort) and must work
//! from any thread, so each one enters the runtime explicitly.

use std::{
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RErr, ROk, ROption, RResult, RStr, RString, RVec, Tuple2},
};
use async_ffi::{FfiFuture, FutureExt as _};
use futures::FutureExt as _;
use polyport_handler_api::{
    ffi::{FfiHost, FfiHostBox, FfiHost_TO, FfiJoinHandle, FfiJoinHandleBox, FfiJoinHandle_TO, LogLevel},
    storage::{
        Ack, Appended, CursorInfo, CursorReadRequest, FfiEntry, FfiNewEntry, FfiReadResult, InitialPosition, LogRange,
        Position, ReadRequest, TopicConfig, TopicInfo, TopicLookup, TopicPolicies,
    },
    ErrorKind, HandlerError,
};
use tracing::{Instrument, Level};

use crate::topics::Topics;

/// The host side of [`FfiHost`].
#[derive(Clone)]
pub struct HostServices {
    runtime: tokio::runtime::Handle,
    origin: Instant,
    max_log_level: LogLevel,
    topics: Arc<Topics>,
    advertised_address: String,
    converters: Arc<crate::convert::Converters>,
}

impl HostServices {
    /// Services running on `runtime`, keeping handler logs down to `max_log_level`.
    pub fn new(
        runtime: tokio::runtime::Handle,
        max_log_level: LogLevel,
        topics: Arc<Topics>,
        advertised_address: String,
        converters: Arc<crate::convert::Converters>,
    ) -> Self {
        Self { runtime, origin: Instant::now(), max_log_level, topics, advertised_address, converters }
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

    fn lookup(&self, topic: RStr<'_>) -> FfiFuture<RResult<TopicLookup, HandlerError>> {
        self.lookup_impl(topic)
    }

    fn partitioned_metadata(&self, topic: RStr<'_>, auto_create: bool) -> FfiFuture<RResult<u32, HandlerError>> {
        self.partitioned_metadata_impl(topic, auto_create)
    }

    fn create_topic(&self, topic: RStr<'_>, partitions: u32) -> FfiFuture<RResult<(), HandlerError>> {
        self.create_topic_impl(topic, partitions)
    }

    fn delete_topic(&self, topic: RStr<'_>) -> FfiFuture<RResult<(), HandlerError>> {
        self.delete_topic_impl(topic)
    }

    fn list_topics(&self, namespace: RStr<'_>) -> FfiFuture<RResult<RVec<TopicInfo>, HandlerError>> {
        self.list_topics_impl(namespace)
    }

    fn append(
        &self,
        partition: RStr<'_>,
        entries: RVec<FfiNewEntry>,
        durable: bool,
    ) -> FfiFuture<RResult<RVec<Appended>, HandlerError>> {
        self.append_impl(partition, entries, durable)
    }

    fn read(&self, partition: RStr<'_>, request: ReadRequest) -> FfiFuture<RResult<FfiReadResult, HandlerError>> {
        self.read_impl(partition, request)
    }

    fn log_range(&self, partition: RStr<'_>) -> FfiFuture<RResult<LogRange, HandlerError>> {
        self.log_range_impl(partition)
    }

    fn find_by_time(
        &self,
        partition: RStr<'_>,
        timestamp_ms: i64,
    ) -> FfiFuture<RResult<ROption<FfiEntry>, HandlerError>> {
        self.find_by_time_impl(partition, timestamp_ms)
    }

    fn cursor_open(
        &self,
        partition: RStr<'_>,
        name: RStr<'_>,
        durable: bool,
        initial: InitialPosition,
    ) -> FfiFuture<RResult<CursorInfo, HandlerError>> {
        self.cursor_open_impl(partition, name, durable, initial)
    }

    fn cursor_ack(
        &self,
        partition: RStr<'_>,
        name: RStr<'_>,
        ack: Ack,
    ) -> FfiFuture<RResult<CursorInfo, HandlerError>> {
        self.cursor_ack_impl(partition, name, ack)
    }

    fn cursor_seek(
        &self,
        partition: RStr<'_>,
        name: RStr<'_>,
        offset: u64,
    ) -> FfiFuture<RResult<CursorInfo, HandlerError>> {
        self.cursor_seek_impl(partition, name, offset)
    }

    fn cursor_delete(&self, partition: RStr<'_>, name: RStr<'_>) -> FfiFuture<RResult<(), HandlerError>> {
        self.cursor_delete_impl(partition, name)
    }

    fn cursor_list(&self, partition: RStr<'_>) -> FfiFuture<RResult<RVec<CursorInfo>, HandlerError>> {
        self.cursor_list_impl(partition)
    }

    fn message_id_to_offset(&self, partition: RStr<'_>, position: Position) -> FfiFuture<RResult<u64, HandlerError>> {
        self.message_id_to_offset_impl(partition, position)
    }

    fn offset_to_message_id(&self, partition: RStr<'_>, offset: u64) -> FfiFuture<RResult<Position, HandlerError>> {
        self.offset_to_message_id_impl(partition, offset)
    }

    fn topic_config(&self, topic: RStr<'_>) -> FfiFuture<RResult<TopicConfig, HandlerError>> {
        self.topic_config_impl(topic)
    }

    fn set_topic_policies(&self, topic: RStr<'_>, policies: TopicPolicies) -> FfiFuture<RResult<(), HandlerError>> {
        self.set_topic_policies_impl(topic, policies)
    }

    fn delete_records(&self, partition: RStr<'_>, offset: u64) -> FfiFuture<RResult<LogRange, HandlerError>> {
        self.delete_records_impl(partition, offset)
    }

    fn create_partitions(&self, topic: RStr<'_>, count: u32) -> FfiFuture<RResult<(), HandlerError>> {
        self.create_partitions_impl(topic, count)
    }

    fn cursor_read(
        &self,
        partition: RStr<'_>,
        name: RStr<'_>,
        request: CursorReadRequest,
    ) -> FfiFuture<RResult<FfiReadResult, HandlerError>> {
        self.cursor_read_impl(partition, name, request)
    }

    fn create_namespace(&self, namespace: RStr<'_>) -> FfiFuture<RResult<(), HandlerError>> {
        self.create_namespace_impl(namespace)
    }

    fn register_converter(&self, format: u16, converter: polyport_handler_api::convert::FfiConverterBox) {
        self.converters.register(format, converter);
    }

    fn decode_entry(
        &self,
        format: u16,
        payload: abi_stable::std_types::RSlice<'_, u8>,
    ) -> RResult<RVec<polyport_handler_api::convert::FfiMessage>, HandlerError> {
        self.converters.decode_ffi(format, payload.as_slice()).into()
    }

    fn decode_entry_async(
        &self,
        format: u16,
        payload: polyport_handler_api::storage::FfiBytes,
    ) -> FfiFuture<RResult<RVec<polyport_handler_api::convert::FfiMessage>, HandlerError>> {
        let _guard = self.runtime.enter();
        let converters = Arc::clone(&self.converters);
        let task = tokio::task::spawn_blocking(move || converters.decode_ffi(format, payload.as_ref()));
        async move {
            match task.await {
                Ok(decoded) => decoded.into(),
                Err(e) => RResult::RErr(HandlerError::new(polyport_handler_api::ErrorKind::PANICKED, e.to_string())),
            }
        }
        .into_ffi()
    }

    fn decode_entry_at(
        &self,
        partition: RStr<'_>,
        base_offset: u64,
        format: u16,
        payload: polyport_handler_api::storage::FfiBytes,
    ) -> FfiFuture<RResult<RVec<polyport_handler_api::convert::FfiMessage>, HandlerError>> {
        self.decode_entry_at_impl(partition, base_offset, format, payload)
    }

    fn topic_properties(&self, topic: RStr<'_>) -> FfiFuture<RResult<RVec<Tuple2<RString, RString>>, HandlerError>> {
        self.topic_properties_impl(topic)
    }

    fn update_topic_properties(
        &self,
        topic: RStr<'_>,
        changes: RVec<Tuple2<RString, ROption<RString>>>,
    ) -> FfiFuture<RResult<RVec<Tuple2<RString, RString>>, HandlerError>> {
        self.update_topic_properties_impl(topic, changes)
    }

    fn encode_entry(
        &self,
        format: u16,
        messages: RVec<polyport_handler_api::convert::FfiMessage>,
        sequence: u64,
    ) -> RResult<RVec<u8>, HandlerError> {
        use crate::pulsar::FORMAT_PULSAR;
        if format != FORMAT_PULSAR {
            let message = format!("the host encodes only its own entry format (Pulsar, {FORMAT_PULSAR}), not {format}");
            return RResult::RErr(HandlerError::new(polyport_handler_api::ErrorKind::INVALID_ARGUMENT, message));
        }
        let messages: Vec<polyport_handler_api::convert::Message> = messages.into_iter().map(Into::into).collect();
        RResult::ROk(crate::pulsar::convert::from_messages(&messages, sequence).into())
    }

    fn append_checked(
        &self,
        partition: RStr<'_>,
        entries: RVec<FfiNewEntry>,
        crcs: RVec<u32>,
        durable: bool,
    ) -> FfiFuture<RResult<RVec<Appended>, HandlerError>> {
        self.append_checked_impl(partition, entries, crcs, durable)
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

mod storage;
