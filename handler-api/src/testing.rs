#![allow(non_local_definitions)] // sabi_trait impls

//! An in-memory host for a handler's unit tests: [`MemoryHost`] serves the
//! same [`Host`] and [`Partition`](crate::Partition) API as the broker, with
//! topics, entries and cursors kept in memory, on the caller's tokio runtime.
//! Enable it with the `testing` feature, as a dev-dependency:
//!
//! ```toml
//! [dev-dependencies]
//! polyport-handler-api = { version = "0.2", features = ["testing"] }
//! tokio = { version = "1", features = ["rt", "macros"] }
//! ```
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), polyport_handler_api::HandlerError> {
//! use polyport_handler_api::{bytes::Bytes, storage::{NewEntry, OpenOptions, ReadRequest}, testing::MemoryHost};
//!
//! let host = MemoryHost::new().host();
//! let orders = host.open_partition("orders", OpenOptions { auto_create: true, wait_ms: 0 }).await?;
//! let entry = NewEntry { payload: Bytes::from_static(b"hi"), count: 1, format: 100, flags: 0, max_timestamp_ms: -1 };
//! assert_eq!(orders.append(vec![entry], true).await?.appended[0].base_offset, 0);
//! let read = orders.read(ReadRequest { offset: 0, max_entries: 10, max_bytes: u32::MAX, wait_ms: 0 }).await?;
//! assert_eq!(read.entries[0].payload, Bytes::from_static(b"hi"));
//! # Ok(()) }
//! ```
//!
//! What it does not model: durability, segments (every entry is in ledger
//! 0, its entry id its index), retention and TTL (policies are kept, not
//! applied), chunked messages, the host's own Pulsar format (conversion
//! goes through the converters registered here only), and the broker's
//! limits on sizes.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2},
};
use async_ffi::{FfiFuture, FutureExt as _};
use bytes::Bytes;
use tokio::sync::watch;

use crate::{
    convert::{FfiConversion, FfiConversionBox, FfiConversion_TO, FfiConverterBox, FfiMessage},
    ffi::{FfiHost, FfiHost_TO, FfiJoinHandle, FfiJoinHandleBox, FfiJoinHandle_TO, LogLevel},
    storage::{
        Ack, AppendResult, Appended, CursorInfo, CursorReadRequest, EntryMeta, FfiBytes, FfiEntry, FfiNewEntry,
        FfiPartition, FfiPartitionBox, FfiPartition_TO, FfiReadResult, FfiTopics, FfiTopicsBox, FfiTopics_TO,
        InitialPosition, LogRange, OpenOptions, Position, Properties, PropertyChanges, ReadRequest, TopicConfig,
        TopicInfo, TopicLookup, TopicPolicies,
    },
    ErrorKind, HandlerError, Host,
};

/// A host whose topics live in memory. Create it inside a tokio runtime
/// (`#[tokio::test]`): its tasks and timers run on that runtime.
#[derive(Clone)]
pub struct MemoryHost {
    state: Arc<State>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for MemoryHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryHost")
    }
}

struct State {
    origin: Instant,
    /// Canonical topic name → partition count (0: non-partitioned).
    topics: Mutex<BTreeMap<String, TopicState>>,
    /// Canonical partition name → its log.
    logs: Mutex<HashMap<String, Arc<Log>>>,
    /// Counts creations, so that opens waiting for a topic wake.
    created: watch::Sender<u64>,
    converters: Mutex<HashMap<u16, Arc<FfiConverterBox>>>,
    auto_create: bool,
}

#[derive(Default)]
struct TopicState {
    partitions: u32,
    properties: BTreeMap<String, String>,
    policies: TopicPolicies,
}

#[derive(Default)]
struct Log {
    inner: Mutex<LogInner>,
    end: watch::Sender<u64>,
}

#[derive(Default)]
struct LogInner {
    entries: Vec<FfiEntryData>,
    start: u64,
    cursors: BTreeMap<String, Cursor>,
    deleted: bool,
}

#[derive(Clone)]
struct FfiEntryData {
    meta: EntryMeta,
    payload: Bytes,
}

#[derive(Clone)]
struct Cursor {
    durable: bool,
    mark_delete: u64,
    read_position: u64,
    /// Acknowledged ranges above the mark-delete.
    acked: Vec<(u64, u64)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn error(kind: ErrorKind, message: impl Into<String>) -> HandlerError {
    HandlerError::new(kind, message)
}

fn ready<T: Send + 'static>(value: Result<T, HandlerError>) -> FfiFuture<RResult<T, HandlerError>> {
    std::future::ready(RResult::from(value)).into_ffi()
}

/// `x`, `t/ns/x` or `persistent://t/ns/x` as `persistent://t/ns/x`.
fn canonical(name: &str) -> Result<String, HandlerError> {
    let path = name.strip_prefix("persistent://").unwrap_or(name);
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [local] if !local.is_empty() => Ok(format!("persistent://public/default/{local}")),
        [t, ns, local] if !t.is_empty() && !ns.is_empty() && !local.is_empty() => Ok(format!("persistent://{path}")),
        _ => Err(error(ErrorKind::INVALID_ARGUMENT, format!("invalid topic name {name:?}"))),
    }
}

impl MemoryHost {
    /// An empty host (namespace `public/default`) that auto-creates topics
    /// when asked to, as the broker does by default.
    pub fn new() -> Self {
        Self::with_auto_create(true)
    }

    /// An empty host; with `auto_create` false, topics exist only once created.
    pub fn with_auto_create(auto_create: bool) -> Self {
        let state = State {
            origin: Instant::now(),
            topics: Mutex::default(),
            logs: Mutex::default(),
            created: watch::Sender::new(0),
            converters: Mutex::default(),
            auto_create,
        };
        Self { state: Arc::new(state), runtime: tokio::runtime::Handle::current() }
    }

    /// The [`Host`] a handler's `start` would get.
    pub fn host(&self) -> Host {
        let ffi = FfiHost_TO::from_ptr(RArc::new(self.clone()), TD_Opaque);
        Host::from_ffi(ffi)
    }
}

impl Default for MemoryHost {
    fn default() -> Self {
        Self::new()
    }
}

struct MemoryJoinHandle(tokio::task::JoinHandle<()>);

impl FfiJoinHandle for MemoryJoinHandle {
    fn abort(&self) {
        self.0.abort();
    }

    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    fn join(self) -> FfiFuture<RResult<(), HandlerError>> {
        async move {
            match self.0.await {
                Ok(()) => RResult::ROk(()),
                Err(e) if e.is_cancelled() => RResult::RErr(error(ErrorKind::CANCELLED, "task was aborted")),
                Err(e) => RResult::RErr(error(ErrorKind::PANICKED, format!("task panicked: {e}"))),
            }
        }
        .into_ffi()
    }
}

impl FfiHost for MemoryHost {
    fn spawn(&self, _name: RStr<'_>, task: FfiFuture<()>) -> FfiJoinHandleBox {
        FfiJoinHandle_TO::from_value(MemoryJoinHandle(self.runtime.spawn(task)), TD_Opaque)
    }

    fn sleep(&self, nanos: u64) -> FfiFuture<()> {
        let _guard = self.runtime.enter();
        tokio::time::sleep(Duration::from_nanos(nanos)).into_ffi()
    }

    fn now_unix_nanos(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn monotonic_nanos(&self) -> u64 {
        u64::try_from(self.state.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn max_log_level(&self) -> LogLevel {
        LogLevel::Trace
    }

    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        eprintln!("[{level:?} {target}] {message}");
    }

    fn topics(&self) -> FfiTopicsBox {
        FfiTopics_TO::from_ptr(RArc::new(self.clone()), TD_Opaque)
    }

    fn conversion(&self) -> FfiConversionBox {
        FfiConversion_TO::from_ptr(RArc::new(self.clone()), TD_Opaque)
    }
}

impl State {
    /// Creates `topic` (canonical) with `partitions`.
    fn create(&self, topic: &str, partitions: u32) -> Result<(), HandlerError> {
        let mut topics = lock(&self.topics);
        if topics.contains_key(topic) {
            return Err(error(ErrorKind::ALREADY_EXISTS, format!("topic {topic} already exists")));
        }
        topics.insert(topic.to_owned(), TopicState { partitions, ..Default::default() });
        drop(topics);
        self.created.send_modify(|n| *n += 1);
        Ok(())
    }

    /// The log of `partition` (canonical), creating the topic if `create` and allowed.
    fn log(&self, partition: &str, create: bool) -> Result<Arc<Log>, HandlerError> {
        if let Some(log) = lock(&self.logs).get(partition) {
            return Ok(Arc::clone(log));
        }
        let (base, index) = match partition.rsplit_once("-partition-") {
            Some((base, n)) => (base, n.parse::<u32>().ok()),
            None => (partition, None),
        };
        let partitions = lock(&self.topics).get(base).map(|t| t.partitions);
        match (partitions, index) {
            (Some(n), Some(i)) if n > 0 && i >= n => {
                return Err(error(
                    ErrorKind::INVALID_ARGUMENT,
                    format!("{base} has {n} partitions; there is no partition {i}"),
                ))
            }
            (Some(n), None) if n > 0 => {
                return Err(error(ErrorKind::INVALID_ARGUMENT, format!("{partition} is partitioned ({n} partitions)")))
            }
            (Some(_), _) => {}
            (None, _) if lock(&self.topics).contains_key(partition) => {}
            (None, _) if create && self.auto_create => {
                let _ = self.create(partition, 0);
            }
            (None, _) => return Err(error(ErrorKind::NOT_FOUND, format!("topic {partition} does not exist"))),
        }
        Ok(Arc::clone(lock(&self.logs).entry(partition.to_owned()).or_default()))
    }

    fn topic<T>(&self, topic: &str, f: impl FnOnce(&mut TopicState) -> T) -> Result<T, HandlerError> {
        let mut topics = lock(&self.topics);
        let state = topics
            .get_mut(topic)
            .ok_or_else(|| error(ErrorKind::NOT_FOUND, format!("topic {topic} does not exist")))?;
        Ok(f(state))
    }
}

impl FfiTopics for MemoryHost {
    fn lookup(&self, topic: RStr<'_>) -> FfiFuture<RResult<TopicLookup, HandlerError>> {
        ready(canonical(topic.as_str()).map(|topic| TopicLookup {
            topic: topic.into(),
            broker_address: "127.0.0.1:6650".into(),
            local: true,
            advertised: RVec::new(),
        }))
    }

    fn partitioned_metadata(&self, topic: RStr<'_>, auto_create: bool) -> FfiFuture<RResult<u32, HandlerError>> {
        let result = canonical(topic.as_str()).and_then(|topic| {
            if auto_create && self.state.auto_create && !lock(&self.state.topics).contains_key(&topic) {
                let _ = self.state.create(&topic, 0);
            }
            self.state.topic(&topic, |t| t.partitions)
        });
        ready(result)
    }

    fn create_namespace(&self, _namespace: RStr<'_>) -> FfiFuture<RResult<(), HandlerError>> {
        ready(Ok(()))
    }

    fn create_topic(&self, topic: RStr<'_>, partitions: u32) -> FfiFuture<RResult<(), HandlerError>> {
        ready(canonical(topic.as_str()).and_then(|topic| self.state.create(&topic, partitions)))
    }

    fn create_partitions(&self, topic: RStr<'_>, count: u32) -> FfiFuture<RResult<(), HandlerError>> {
        let result = canonical(topic.as_str()).and_then(|topic| {
            self.state.topic(&topic, |t| {
                if count <= t.partitions {
                    return Err(error(ErrorKind::INVALID_ARGUMENT, format!("{topic} has {} partitions", t.partitions)));
                }
                t.partitions = count;
                Ok(())
            })?
        });
        self.state.created.send_modify(|n| *n += 1);
        ready(result)
    }

    fn delete_topic(&self, topic: RStr<'_>) -> FfiFuture<RResult<(), HandlerError>> {
        let result = canonical(topic.as_str()).and_then(|topic| {
            lock(&self.state.topics)
                .remove(&topic)
                .ok_or_else(|| error(ErrorKind::NOT_FOUND, format!("topic {topic} does not exist")))?;
            let prefix = format!("{topic}-partition-");
            lock(&self.state.logs).retain(|name, log| {
                let gone = *name == topic || name.starts_with(&prefix);
                if gone {
                    lock(&log.inner).deleted = true;
                }
                !gone
            });
            Ok(())
        });
        ready(result)
    }

    fn list_topics(&self, namespace: RStr<'_>) -> FfiFuture<RResult<RVec<TopicInfo>, HandlerError>> {
        let prefix = format!("persistent://{}/", namespace.as_str());
        let topics = lock(&self.state.topics)
            .iter()
            .filter(|(name, _)| name.starts_with(&prefix))
            .map(|(name, t)| TopicInfo { name: name.as_str().into(), partitions: t.partitions })
            .collect();
        ready(Ok(topics))
    }

    fn topic_config(&self, topic: RStr<'_>) -> FfiFuture<RResult<TopicConfig, HandlerError>> {
        let result = canonical(topic.as_str()).and_then(|topic| {
            self.state.topic(&topic, |t| TopicConfig { overrides: t.policies, effective: t.policies })
        });
        ready(result)
    }

    fn set_topic_policies(&self, topic: RStr<'_>, policies: TopicPolicies) -> FfiFuture<RResult<(), HandlerError>> {
        ready(canonical(topic.as_str()).and_then(|topic| self.state.topic(&topic, |t| t.policies = policies)))
    }

    fn topic_properties(&self, topic: RStr<'_>) -> FfiFuture<RResult<Properties, HandlerError>> {
        let result = canonical(topic.as_str()).and_then(|topic| {
            self.state.topic(&topic, |t| {
                t.properties.iter().map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str()))).collect()
            })
        });
        ready(result)
    }

    fn update_topic_properties(
        &self,
        topic: RStr<'_>,
        changes: PropertyChanges,
    ) -> FfiFuture<RResult<Properties, HandlerError>> {
        let result = canonical(topic.as_str()).and_then(|topic| {
            self.state.topic(&topic, |t| {
                for Tuple2(k, v) in changes {
                    match v.into_option() {
                        Some(v) => t.properties.insert(k.into_string(), v.into_string()),
                        None => t.properties.remove(k.as_str()),
                    };
                }
                t.properties.iter().map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str()))).collect()
            })
        });
        ready(result)
    }

    fn open_partition(
        &self,
        partition: RStr<'_>,
        options: OpenOptions,
    ) -> FfiFuture<RResult<FfiPartitionBox, HandlerError>> {
        let (state, partition) = (Arc::clone(&self.state), partition.as_str().to_owned());
        let _guard = self.runtime.enter();
        async move {
            let name = canonical(&partition)?;
            let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::from(options.wait_ms));
            loop {
                let mut created = state.created.subscribe();
                match state.log(&name, options.auto_create) {
                    Ok(log) => {
                        let handle = MemoryPartition {
                            state: Arc::clone(&state),
                            name,
                            auto_create: options.auto_create,
                            log: Arc::new(Mutex::new(log)),
                        };
                        return Ok(FfiPartition_TO::from_ptr(RArc::new(handle), TD_Opaque));
                    }
                    Err(e) if options.wait_ms > 0 && e.kind() == ErrorKind::NOT_FOUND => {
                        if tokio::time::timeout_at(deadline, created.changed()).await.is_err() {
                            return Err(e);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        .map_ffi()
    }
}

/// `into_ffi` for a future of a `Result`.
trait MapFfi<T> {
    fn map_ffi(self) -> FfiFuture<RResult<T, HandlerError>>;
}

impl<T: Send + 'static, F: std::future::Future<Output = Result<T, HandlerError>> + Send + 'static> MapFfi<T> for F {
    fn map_ffi(self) -> FfiFuture<RResult<T, HandlerError>> {
        async move { RResult::from(self.await) }.into_ffi()
    }
}

/// A partition handle of [`MemoryHost`].
#[derive(Clone)]
struct MemoryPartition {
    state: Arc<State>,
    name: String,
    auto_create: bool,
    log: Arc<Mutex<Arc<Log>>>,
}

impl MemoryPartition {
    /// The log, or the topic's new one after a deletion.
    fn log(&self, create: bool) -> Result<Arc<Log>, HandlerError> {
        let held = Arc::clone(&lock(&self.log));
        if !lock(&held.inner).deleted {
            return Ok(held);
        }
        let fresh = self.state.log(&self.name, create && self.auto_create)?;
        *lock(&self.log) = Arc::clone(&fresh);
        Ok(fresh)
    }

    fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut LogInner) -> Result<T, HandlerError>,
    ) -> FfiFuture<RResult<T, HandlerError>> {
        ready(self.log(false).and_then(|log| f(&mut lock(&log.inner))))
    }
}

impl LogInner {
    fn end(&self) -> u64 {
        self.entries.last().map_or(self.start, |e| e.meta.base_offset + u64::from(e.meta.count))
    }

    fn range(&self) -> LogRange {
        LogRange { start: self.first(), end: self.end() }
    }

    fn first(&self) -> u64 {
        self.start.max(self.entries.first().map_or(self.start, |e| e.meta.base_offset).min(self.end()))
    }

    fn check(&self, offset: u64, name: &str) -> Result<(), HandlerError> {
        let r = self.range();
        if offset < r.start || offset > r.end {
            let message = format!(
                "offset {offset} is outside the log of {name}: valid offsets are {} to {} (end exclusive)",
                r.start, r.end
            );
            return Err(error(ErrorKind::OUT_OF_RANGE, message));
        }
        Ok(())
    }

    /// Index of the entry holding `offset` (or the first after it).
    fn index_of(&self, offset: u64) -> usize {
        self.entries.partition_point(|e| e.meta.base_offset + u64::from(e.meta.count) <= offset)
    }

    fn read(&self, offset: u64, max_entries: u32, max_bytes: u32) -> FfiReadResult {
        let mut out = RVec::new();
        let mut bytes = 0usize;
        for (i, e) in self.entries.iter().enumerate().skip(self.index_of(offset)) {
            if out.len() >= max_entries as usize || (!out.is_empty() && bytes + e.payload.len() > max_bytes as usize) {
                break;
            }
            bytes += e.payload.len();
            out.push(ffi_entry(i, e));
        }
        FfiReadResult { entries: out, range: self.range() }
    }

    fn cursor_info(&self, name: &str) -> Result<CursorInfo, HandlerError> {
        let c = self.cursors.get(name).ok_or_else(|| error(ErrorKind::NOT_FOUND, format!("no cursor {name}")))?;
        let end = self.end();
        let acked: u64 = c.acked.iter().map(|(s, e)| e - s).sum();
        Ok(CursorInfo {
            name: name.into(),
            durable: c.durable,
            mark_delete: c.mark_delete,
            acked_ranges: c.acked.iter().map(|(s, e)| Tuple2(*s, *e)).collect(),
            backlog_entries: self.entries.len().saturating_sub(self.index_of(c.mark_delete)) as u64,
            backlog_messages: end.saturating_sub(c.mark_delete).saturating_sub(acked),
        })
    }
}

fn ffi_entry(index: usize, e: &FfiEntryData) -> FfiEntry {
    FfiEntry { ledger_id: 0, entry_id: index as u64, meta: e.meta, payload: FfiBytes::from_bytes(e.payload.clone()) }
}

impl FfiPartition for MemoryPartition {
    fn name(&self) -> RString {
        self.name.as_str().into()
    }

    fn append(
        &self,
        entries: RVec<FfiNewEntry>,
        _crcs: RVec<u32>,
        _durable: bool,
    ) -> FfiFuture<RResult<AppendResult, HandlerError>> {
        let result = self.log(true).map(|log| {
            let mut inner = lock(&log.inner);
            let now_ms =
                i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())).unwrap_or(0);
            let mut appended = RVec::new();
            for e in entries {
                let base_offset = inner.end();
                let meta = EntryMeta {
                    base_offset,
                    count: e.count.max(1),
                    format: e.format,
                    flags: e.flags,
                    publish_time_ms: now_ms,
                    max_timestamp_ms: if e.max_timestamp_ms < 0 { now_ms } else { e.max_timestamp_ms },
                };
                appended.push(Appended {
                    base_offset,
                    ledger_id: 0,
                    entry_id: inner.entries.len() as u64,
                    publish_time_ms: now_ms,
                });
                inner.entries.push(FfiEntryData { meta, payload: e.payload.into_bytes() });
            }
            let range = inner.range();
            log.end.send_replace(range.end);
            AppendResult { appended, range }
        });
        ready(result)
    }

    fn read(&self, request: ReadRequest) -> FfiFuture<RResult<FfiReadResult, HandlerError>> {
        let (this, name) = (self.clone(), self.name.clone());
        async move {
            let log = this.log(false)?;
            lock(&log.inner).check(request.offset, &name)?;
            if request.wait_ms > 0 {
                let mut end = log.end.subscribe();
                let wait = Duration::from_millis(u64::from(request.wait_ms));
                let _ = tokio::time::timeout(wait, end.wait_for(|end| *end > request.offset)).await;
            }
            let inner = lock(&log.inner);
            Ok(inner.read(request.offset, request.max_entries, request.max_bytes))
        }
        .map_ffi()
    }

    fn wait(&self, offset: u64, wait_ms: u32) -> FfiFuture<RResult<LogRange, HandlerError>> {
        let this = self.clone();
        async move {
            let log = this.log(false)?;
            let mut end = log.end.subscribe();
            let _ = tokio::time::timeout(Duration::from_millis(u64::from(wait_ms)), end.wait_for(|end| *end > offset))
                .await;
            let range = lock(&log.inner).range();
            Ok(range)
        }
        .map_ffi()
    }

    fn range(&self) -> FfiFuture<RResult<LogRange, HandlerError>> {
        self.with(|inner| Ok(inner.range()))
    }

    fn find_by_time(&self, timestamp_ms: i64) -> FfiFuture<RResult<ROption<FfiEntry>, HandlerError>> {
        self.with(|inner| {
            let found = inner.entries.iter().enumerate().find(|(_, e)| e.meta.max_timestamp_ms >= timestamp_ms);
            Ok(found.map(|(i, e)| ffi_entry(i, e)).into())
        })
    }

    fn delete_records(&self, offset: u64) -> FfiFuture<RResult<LogRange, HandlerError>> {
        let name = self.name.clone();
        self.with(move |inner| {
            inner.check(offset, &name)?;
            inner.start = inner.start.max(offset);
            Ok(inner.range())
        })
    }

    fn message_id_to_offset(&self, position: Position) -> FfiFuture<RResult<u64, HandlerError>> {
        self.with(move |inner| {
            let entry = usize::try_from(position.entry_id).ok().and_then(|i| inner.entries.get(i));
            let e = entry.ok_or_else(|| error(ErrorKind::NOT_FOUND, format!("no entry {}", position.entry_id)))?;
            Ok(e.meta.base_offset + u64::from(position.batch_index))
        })
    }

    fn offset_to_message_id(&self, offset: u64) -> FfiFuture<RResult<Position, HandlerError>> {
        let name = self.name.clone();
        self.with(move |inner| {
            inner.check(offset, &name)?;
            let i = inner.index_of(offset);
            let e =
                inner.entries.get(i).ok_or_else(|| error(ErrorKind::NOT_FOUND, format!("no message at {offset}")))?;
            let batch_index = u32::try_from(offset - e.meta.base_offset).unwrap_or(u32::MAX);
            Ok(Position { ledger_id: 0, entry_id: i as u64, batch_index })
        })
    }

    fn cursor_open(
        &self,
        name: RStr<'_>,
        durable: bool,
        initial: InitialPosition,
    ) -> FfiFuture<RResult<CursorInfo, HandlerError>> {
        let name = name.as_str().to_owned();
        self.with(move |inner| {
            let range = inner.range();
            let at = match initial {
                InitialPosition::Earliest => range.start,
                InitialPosition::Latest => range.end,
                InitialPosition::Offset(o) => o.clamp(range.start, range.end),
            };
            inner.cursors.entry(name.clone()).or_insert(Cursor {
                durable,
                mark_delete: at,
                read_position: at,
                acked: Vec::new(),
            });
            inner.cursor_info(&name)
        })
    }

    fn cursor_ack(&self, name: RStr<'_>, ack: Ack) -> FfiFuture<RResult<CursorInfo, HandlerError>> {
        let name = name.as_str().to_owned();
        self.with(move |inner| {
            let c =
                inner.cursors.get_mut(&name).ok_or_else(|| error(ErrorKind::NOT_FOUND, format!("no cursor {name}")))?;
            match ack {
                Ack::Cumulative(o) => c.mark_delete = c.mark_delete.max(o),
                Ack::Individual(ranges) => c.acked.extend(ranges.into_iter().map(|Tuple2(s, e)| (s, e))),
            }
            // Fold acknowledged ranges that reach the mark-delete into it.
            c.acked.sort_unstable();
            let mut kept = Vec::new();
            for (s, e) in std::mem::take(&mut c.acked) {
                if s <= c.mark_delete {
                    c.mark_delete = c.mark_delete.max(e);
                } else {
                    kept.push((s, e));
                }
            }
            c.acked = kept;
            c.read_position = c.read_position.max(c.mark_delete);
            inner.cursor_info(&name)
        })
    }

    fn cursor_seek(&self, name: RStr<'_>, offset: u64) -> FfiFuture<RResult<CursorInfo, HandlerError>> {
        let name = name.as_str().to_owned();
        self.with(move |inner| {
            let c =
                inner.cursors.get_mut(&name).ok_or_else(|| error(ErrorKind::NOT_FOUND, format!("no cursor {name}")))?;
            (c.mark_delete, c.read_position, c.acked) = (offset, offset, Vec::new());
            inner.cursor_info(&name)
        })
    }

    fn cursor_read(
        &self,
        name: RStr<'_>,
        request: CursorReadRequest,
    ) -> FfiFuture<RResult<FfiReadResult, HandlerError>> {
        let (this, name) = (self.clone(), name.as_str().to_owned());
        async move {
            let log = this.log(false)?;
            let from = {
                let mut inner = lock(&log.inner);
                let c = inner
                    .cursors
                    .get_mut(&name)
                    .ok_or_else(|| error(ErrorKind::NOT_FOUND, format!("no cursor {name}")))?;
                if request.rewind {
                    c.read_position = c.mark_delete;
                }
                c.read_position
            };
            if request.wait_ms > 0 {
                let mut end = log.end.subscribe();
                let wait = Duration::from_millis(u64::from(request.wait_ms));
                let _ = tokio::time::timeout(wait, end.wait_for(|end| *end > from)).await;
            }
            let mut inner = lock(&log.inner);
            let read = inner.read(from, request.max_entries, request.max_bytes);
            if let (Some(last), Some(c)) = (read.entries.last(), inner.cursors.get_mut(&name)) {
                c.read_position = last.meta.base_offset + u64::from(last.meta.count);
            }
            Ok(read)
        }
        .map_ffi()
    }

    fn cursor_delete(&self, name: RStr<'_>) -> FfiFuture<RResult<(), HandlerError>> {
        let name = name.as_str().to_owned();
        self.with(move |inner| {
            inner
                .cursors
                .remove(&name)
                .map(|_| ())
                .ok_or_else(|| error(ErrorKind::NOT_FOUND, format!("no cursor {name}")))
        })
    }

    fn cursor_list(&self) -> FfiFuture<RResult<RVec<CursorInfo>, HandlerError>> {
        self.with(|inner| inner.cursors.keys().map(|name| inner.cursor_info(name)).collect::<Result<RVec<_>, _>>())
    }

    fn decode_at(
        &self,
        _base_offset: u64,
        format: u16,
        payload: FfiBytes,
    ) -> FfiFuture<RResult<RVec<FfiMessage>, HandlerError>> {
        ready(self.state.decode(format, payload.as_ref()))
    }
}

impl State {
    fn decode(&self, format: u16, payload: &[u8]) -> Result<RVec<FfiMessage>, HandlerError> {
        let converter = lock(&self.converters).get(&format).cloned();
        let converter = converter.ok_or_else(|| {
            error(ErrorKind::NOT_FOUND, format!("no converter is registered for entry format {format}"))
        })?;
        converter.to_messages(RSlice::from_slice(payload)).into_result()
    }
}

impl FfiConversion for MemoryHost {
    fn register_converter(&self, format: u16, converter: FfiConverterBox) {
        lock(&self.state.converters).insert(format, Arc::new(converter));
    }

    fn decode_entry(&self, format: u16, payload: RSlice<'_, u8>) -> RResult<RVec<FfiMessage>, HandlerError> {
        self.state.decode(format, payload.as_slice()).into()
    }

    fn decode_entry_async(&self, format: u16, payload: FfiBytes) -> FfiFuture<RResult<RVec<FfiMessage>, HandlerError>> {
        ready(self.state.decode(format, payload.as_ref()))
    }

    fn encode_entry(
        &self,
        format: u16,
        _messages: RVec<FfiMessage>,
        _sequence: u64,
    ) -> RResult<RVec<u8>, HandlerError> {
        RResult::RErr(error(ErrorKind::UNSUPPORTED, format!("the in-memory host encodes no entry format ({format})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        storage::{NewEntry, ReadRequest},
        wait_any,
    };

    fn entry(word: &'static str) -> NewEntry {
        NewEntry { payload: Bytes::from_static(word.as_bytes()), count: 1, format: 100, flags: 0, max_timestamp_ms: -1 }
    }

    #[tokio::test]
    async fn appends_reads_cursors_and_waits_behave_as_the_broker_documents() {
        let host = MemoryHost::with_auto_create(false).host();
        let missing = host.open_partition("orders", OpenOptions::default()).await.map(|_| ()).expect_err("fails");
        assert_eq!(missing.kind(), ErrorKind::NOT_FOUND);
        // A wait for a topic another client creates.
        let waiting = {
            let host = host.clone();
            tokio::spawn(async move {
                host.open_partition("orders", OpenOptions { auto_create: false, wait_ms: 5_000 }).await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        host.create_topic("orders", 0).await.expect("create");
        let orders = waiting.await.expect("join").expect("opened once created");
        assert_eq!(orders.name(), "persistent://public/default/orders");

        let stored = orders.append(vec![entry("a"), entry("b")], true).await.expect("append");
        assert_eq!(stored.appended.iter().map(|a| a.base_offset).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(stored.range, LogRange { start: 0, end: 2 });
        let read = orders
            .read(ReadRequest { offset: 1, max_entries: 10, max_bytes: u32::MAX, wait_ms: 0 })
            .await
            .expect("read");
        assert_eq!(read.entries.len(), 1);
        assert_eq!(read.entries[0].payload, Bytes::from_static(b"b"));
        let out =
            orders.read(ReadRequest { offset: 5, max_entries: 1, max_bytes: 1, wait_ms: 0 }).await.expect_err("fails");
        assert_eq!(out.kind(), ErrorKind::OUT_OF_RANGE);

        let c = orders.cursor_open("audit", true, InitialPosition::Earliest).await.expect("cursor");
        assert_eq!((c.mark_delete, c.backlog_messages), (0, 2));
        let c = orders.cursor_ack("audit", Ack::Cumulative(1)).await.expect("ack");
        assert_eq!((c.mark_delete, c.backlog_messages), (1, 1));

        // wait_any wakes on the partition that grows, not the other.
        host.create_topic("other", 0).await.expect("create");
        let other = host.open_partition("other", OpenOptions::default()).await.expect("open");
        let writer = orders.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            writer.append(vec![entry("c")], true).await
        });
        assert_eq!(wait_any(&[(&other, 0), (&orders, 2)], 5_000).await, Some(1));
        assert_eq!(wait_any(&[(&other, 0)], 20).await, None, "the time runs out");

        // The handle outlives its topic.
        host.delete_topic("orders").await.expect("delete");
        assert_eq!(orders.range().await.expect_err("fails").kind(), ErrorKind::NOT_FOUND);
    }
}
