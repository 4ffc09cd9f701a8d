//! One partition's handle ([`FfiPartition`]): a topic partition resolved
//! once, with its ledger. Every call goes straight to the ledger; none
//! parses a name. When the ledger was closed (its topic deleted, perhaps
//! created again), the next call opens the topic's current ledger, or
//! answers NOT_FOUND.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec, Tuple2};
use async_ffi::FfiFuture;
use polyport_handler_api::{
    convert::FfiMessage,
    storage::{
        Ack, AppendResult, Appended, CursorInfo, CursorReadRequest, EntryMeta, FfiBytes, FfiEntry, FfiNewEntry,
        FfiPartition, FfiReadResult, InitialPosition, LogRange, Position, ReadRequest,
    },
    ErrorKind, HandlerError,
};
use polyport_ledger::{ManagedLedger, NewEntry, ReadLimits};

use super::{
    errors::{ledger_error, topic_error},
    on_runtime,
};
use crate::topics::{TopicName, Topics};

use crate::convert::INLINE_DECODE_BYTES;

/// The host side of [`FfiPartition`].
#[derive(Clone)]
pub(super) struct PartitionHandle {
    runtime: tokio::runtime::Handle,
    state: Arc<State>,
}

/// Where a handler's partition handles report: the broker's metrics, and
/// the handler's protocol, which owns the cursors it opens.
#[derive(Clone)]
pub(crate) struct Meters {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub protocol: Arc<str>,
}

struct State {
    topics: Arc<Topics>,
    converters: Arc<crate::convert::Converters>,
    meters: Meters,
    name: TopicName,
    /// Appends through this handle recreate a deleted topic (it was opened so).
    auto_create: bool,
    ledger: Mutex<Arc<ManagedLedger>>,
}

impl State {
    /// The partition's ledger: the one held, while it is open (no await, so
    /// an append's first poll reaches its queue); else the topic's current one.
    async fn ledger(&self, create: bool) -> Result<Arc<ManagedLedger>, HandlerError> {
        let held = Arc::clone(&self.ledger.lock().unwrap_or_else(PoisonError::into_inner));
        // In a cluster, only while this broker owns the partition (else
        // the open below claims it, or names its owner).
        if !held.is_closed() && self.topics.serves(&self.name) {
            return Ok(held);
        }
        let fresh = self.topics.ledger(&self.name, create && self.auto_create).await.map_err(topic_error)?;
        *self.ledger.lock().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fresh);
        Ok(fresh)
    }
}

impl PartitionHandle {
    pub(super) fn new(
        runtime: tokio::runtime::Handle,
        topics: Arc<Topics>,
        converters: Arc<crate::convert::Converters>,
        meters: Meters,
        name: TopicName,
        auto_create: bool,
        ledger: Arc<ManagedLedger>,
    ) -> Self {
        let state = State { topics, converters, meters, name, auto_create, ledger: Mutex::new(ledger) };
        Self { runtime, state: Arc::new(state) }
    }

    /// Runs `f` on the partition's ledger as an FFI future.
    fn with_ledger<T, F>(
        &self,
        create: bool,
        f: impl FnOnce(Arc<ManagedLedger>) -> F + Send + 'static,
    ) -> FfiFuture<RResult<T, HandlerError>>
    where
        F: std::future::Future<Output = Result<T, HandlerError>> + Send + 'static,
        T: Send + 'static,
    {
        let state = Arc::clone(&self.state);
        on_runtime(&self.runtime, move || async move { f(state.ledger(create).await?).await })
    }
}

fn cursor_info(c: polyport_ledger::CursorInfo) -> CursorInfo {
    CursorInfo {
        name: c.name.into(),
        durable: c.durable,
        mark_delete: c.mark_delete,
        acked_ranges: c.acked_ranges.into_iter().map(|(s, e)| Tuple2(s, e)).collect(),
        backlog_entries: c.backlog_entries,
        backlog_messages: c.backlog_messages,
    }
}

fn entry(e: polyport_ledger::Entry) -> FfiEntry {
    let m = e.meta;
    FfiEntry {
        ledger_id: e.ledger_id,
        entry_id: e.entry_id,
        meta: EntryMeta {
            base_offset: m.base_offset,
            count: m.count,
            format: m.format,
            flags: m.flags,
            publish_time_ms: m.publish_time_ms,
            max_timestamp_ms: m.max_timestamp_ms,
        },
        payload: FfiBytes::from_bytes(e.payload),
    }
}

/// An append future whose first poll always reaches the ledger's queue (on
/// an open ledger), the order handlers rely on (`Host::append`). Tokio's
/// cooperative budget would otherwise make a poll return early, before the
/// command is queued or waits in the queue's line, once the task calling it
/// has done enough work in one turn: a Kafka connection placing the appends
/// of dozens of pipelined requests in one poll did, and later requests'
/// batches were stored before earlier ones'. The append itself does a
/// bounded amount of work per poll, so leaving the budget out is safe.
fn placed_at_first_poll<F: std::future::Future>(append: F) -> tokio::task::Unconstrained<F> {
    tokio::task::unconstrained(append)
}

impl FfiPartition for PartitionHandle {
    fn name(&self) -> RString {
        self.state.name.to_string().into()
    }

    fn append(
        &self,
        entries: RVec<FfiNewEntry>,
        crcs: RVec<u32>,
        durable: bool,
    ) -> FfiFuture<RResult<AppendResult, HandlerError>> {
        let state = Arc::clone(&self.state);
        on_runtime(&self.runtime, move || {
            placed_at_first_poll(async move {
                let ledger = state.ledger(true).await?;
                let started = std::time::Instant::now();
                let appended = if crcs.is_empty() {
                    ledger.append_with(entries.into_iter().map(new_entry).collect(), durable).await
                } else if crcs.len() == entries.len() {
                    ledger.append_checked(entries.into_iter().map(new_entry).zip(crcs).collect(), durable).await
                } else {
                    let message = format!("{} CRCs for {} entries", crcs.len(), entries.len());
                    return Err(HandlerError::new(ErrorKind::INVALID_ARGUMENT, message));
                };
                let appended = appended.map_err(ledger_error)?;
                state.meters.metrics.storage_write.observe(started.elapsed().as_secs_f64());
                // The fence, again: a broker that lost the partition (or
                // its session) while the append waited acknowledges nothing.
                state.topics.check_acknowledge(&state.name).map_err(topic_error)?;
                let r = ledger.range();
                Ok(AppendResult { appended: answers(appended), range: LogRange { start: r.start, end: r.end } })
            })
        })
    }

    fn read(&self, request: ReadRequest) -> FfiFuture<RResult<FfiReadResult, HandlerError>> {
        let meters = self.state.meters.clone();
        self.with_ledger(false, move |ledger| async move {
            let (limits, wait) = read_bounds(request.max_entries, request.max_bytes, request.wait_ms);
            // Timed only when the data is there already: a read that waits
            // for new data measures the producers, not the storage.
            let started = (ledger.range().end > request.offset).then(std::time::Instant::now);
            let batch = ledger.read(request.offset, limits, wait).await.map_err(ledger_error)?;
            Ok(read_result(&ledger, &meters, started, batch))
        })
    }

    fn wait(&self, offset: u64, wait_ms: u32) -> FfiFuture<RResult<LogRange, HandlerError>> {
        self.with_ledger(false, move |ledger| async move {
            let r = ledger.wait_past(offset, Duration::from_millis(u64::from(wait_ms))).await;
            Ok(LogRange { start: r.start, end: r.end })
        })
    }

    fn range(&self) -> FfiFuture<RResult<LogRange, HandlerError>> {
        self.with_ledger(false, move |ledger| async move {
            let r = ledger.range();
            Ok(LogRange { start: r.start, end: r.end })
        })
    }

    fn find_by_time(&self, ts: i64) -> FfiFuture<RResult<ROption<FfiEntry>, HandlerError>> {
        self.with_ledger(false, move |ledger| async move {
            let found = ledger.nonblocking(move |l| l.find_by_time(ts)).await.map_err(ledger_error)?;
            Ok(found.map(entry).into())
        })
    }

    fn delete_records(&self, offset: u64) -> FfiFuture<RResult<LogRange, HandlerError>> {
        self.with_ledger(false, move |ledger| async move {
            let r = ledger.delete_records_before(offset).await.map_err(ledger_error)?;
            Ok(LogRange { start: r.start, end: r.end })
        })
    }

    fn message_id_to_offset(&self, position: Position) -> FfiFuture<RResult<u64, HandlerError>> {
        self.with_ledger(false, move |ledger| async move {
            let position = polyport_ledger::Position {
                ledger_id: position.ledger_id,
                entry_id: position.entry_id,
                batch_index: position.batch_index,
            };
            ledger.nonblocking(move |l| l.offset_of(position)).await.map_err(ledger_error)
        })
    }

    fn offset_to_message_id(&self, offset: u64) -> FfiFuture<RResult<Position, HandlerError>> {
        self.with_ledger(false, move |ledger| async move {
            let p = ledger.nonblocking(move |l| l.position(offset)).await.map_err(ledger_error)?;
            Ok(Position { ledger_id: p.ledger_id, entry_id: p.entry_id, batch_index: p.batch_index })
        })
    }

    fn cursor_open(
        &self,
        name: RStr<'_>,
        durable: bool,
        initial: InitialPosition,
    ) -> FfiFuture<RResult<CursorInfo, HandlerError>> {
        let name = name.as_str().to_owned();
        let protocol = Arc::clone(&self.state.meters.protocol);
        self.with_ledger(false, move |ledger| async move {
            let initial = match initial {
                InitialPosition::Earliest => polyport_ledger::InitialPosition::Earliest,
                InitialPosition::Latest => polyport_ledger::InitialPosition::Latest,
                InitialPosition::Offset(o) => polyport_ledger::InitialPosition::Offset(o),
            };
            let info = ledger.open_cursor(&name, durable, initial).await.map_err(ledger_error)?;
            ledger.stats().set_cursor_owner(&name, &protocol);
            Ok(cursor_info(info))
        })
    }

    fn cursor_ack(&self, name: RStr<'_>, ack: Ack) -> FfiFuture<RResult<CursorInfo, HandlerError>> {
        let name = name.as_str().to_owned();
        self.with_ledger(false, move |ledger| async move {
            let ack = match ack {
                Ack::Cumulative(o) => polyport_ledger::Ack::Cumulative(o),
                Ack::Individual(ranges) => {
                    polyport_ledger::Ack::Individual(ranges.into_iter().map(|t| (t.0, t.1)).collect())
                }
            };
            ledger.acknowledge(&name, &ack).map(cursor_info).map_err(ledger_error)
        })
    }

    fn cursor_seek(&self, name: RStr<'_>, offset: u64) -> FfiFuture<RResult<CursorInfo, HandlerError>> {
        let name = name.as_str().to_owned();
        self.with_ledger(false, move |ledger| async move {
            ledger.seek_cursor(&name, offset).map(cursor_info).map_err(ledger_error)
        })
    }

    fn cursor_read(
        &self,
        name: RStr<'_>,
        request: CursorReadRequest,
    ) -> FfiFuture<RResult<FfiReadResult, HandlerError>> {
        let name = name.as_str().to_owned();
        let meters = self.state.meters.clone();
        self.with_ledger(false, move |ledger| async move {
            let (limits, wait) = read_bounds(request.max_entries, request.max_bytes, request.wait_ms);
            let started = None;
            let batch = ledger.read_cursor(&name, limits, wait, request.rewind).await.map_err(ledger_error)?;
            Ok(read_result(&ledger, &meters, started, batch))
        })
    }

    fn cursor_delete(&self, name: RStr<'_>) -> FfiFuture<RResult<(), HandlerError>> {
        let name = name.as_str().to_owned();
        self.with_ledger(false, move |ledger| async move { ledger.delete_cursor(&name).await.map_err(ledger_error) })
    }

    fn cursor_list(&self) -> FfiFuture<RResult<RVec<CursorInfo>, HandlerError>> {
        self.with_ledger(
            false,
            move |ledger| async move { Ok(ledger.cursors().into_iter().map(cursor_info).collect()) },
        )
    }

    fn decode_at(
        &self,
        base_offset: u64,
        format: u16,
        payload: FfiBytes,
    ) -> FfiFuture<RResult<RVec<FfiMessage>, HandlerError>> {
        use crate::pulsar::chunks::{self, Chunk};
        let raw = bytes::Bytes::from_owner(payload);
        let converters = Arc::clone(&self.state.converters);
        self.with_ledger(false, move |ledger| async move {
            if format != crate::pulsar::FORMAT_PULSAR {
                // Another handler's format: its converter, here when its
                // bound is small, else on a blocking thread.
                if converters.converts_inline(format, &raw) {
                    return converters.decode_ffi(format, &raw);
                }
                return tokio::task::spawn_blocking(move || converters.decode_ffi(format, &raw))
                    .await
                    .map_err(|e| HandlerError::new(ErrorKind::PANICKED, e.to_string()))?;
            }
            let (metadata, payload) = crate::pulsar::frame::split_section(&raw)
                .ok_or_else(|| HandlerError::new(ErrorKind::CORRUPT, "Pulsar entry: metadata does not decode"))?;
            let (metadata, payload) = match chunks::chunk_of(&metadata) {
                Chunk::Whole => (metadata, payload),
                Chunk::Partial => return Ok(RVec::new()),
                Chunk::Last => {
                    let whole = chunks::assemble(&ledger, base_offset, metadata, payload)
                        .await
                        .map_err(|e| HandlerError::new(ErrorKind::CORRUPT, e))?;
                    match whole {
                        Some(whole) => whole,
                        None => return Ok(RVec::new()),
                    }
                }
            };
            // What the decoder will produce, at most.
            let decoded_bytes = match metadata.compression() {
                crate::pulsar::proto::CompressionType::None => payload.len(),
                _ => metadata.uncompressed_size.map_or(usize::MAX, |n| n as usize),
            };
            let decode = move || {
                crate::pulsar::convert::section_messages(metadata, payload)
                    .map(|messages| messages.into_iter().map(FfiMessage::from).collect())
            };
            if decoded_bytes <= INLINE_DECODE_BYTES {
                // Small: decoded here, which costs less than the trip to a
                // blocking thread (a fetch of single-message entries made
                // one such trip per message).
                return decode();
            }
            // Decoding may decompress up to 256 MiB: on a blocking thread.
            tokio::task::spawn_blocking(decode)
                .await
                .map_err(|e| HandlerError::new(ErrorKind::PANICKED, e.to_string()))?
        })
    }
}

/// The ledger's bounds for a handler's read: `wait_ms` 0 answers at once.
fn read_bounds(max_entries: u32, max_bytes: u32, wait_ms: u32) -> (ReadLimits, Option<Duration>) {
    let limits = ReadLimits { max_entries: max_entries as usize, max_bytes: max_bytes as usize };
    (limits, (wait_ms > 0).then(|| Duration::from_millis(u64::from(wait_ms))))
}

/// A read's answer; the entries count as delivered, and the read's time
/// (from `started`, when it was timed) as storage read latency.
fn read_result(
    ledger: &ManagedLedger,
    meters: &Meters,
    started: Option<std::time::Instant>,
    batch: polyport_ledger::ReadBatch,
) -> FfiReadResult {
    if !batch.entries.is_empty() {
        let (messages, bytes) = batch
            .entries
            .iter()
            .fold((0u64, 0u64), |(m, b), e| (m + u64::from(e.meta.count), b + e.payload.len() as u64));
        ledger.stats().delivered(messages, bytes);
        if let Some(started) = started {
            meters.metrics.storage_read.observe(started.elapsed().as_secs_f64());
        }
    }
    FfiReadResult {
        entries: batch.entries.into_iter().map(entry).collect(),
        range: LogRange { start: batch.range.start, end: batch.range.end },
    }
}

fn new_entry(e: FfiNewEntry) -> NewEntry {
    NewEntry {
        payload: e.payload.into_bytes(),
        count: e.count,
        format: e.format,
        flags: e.flags,
        max_timestamp_ms: e.max_timestamp_ms,
    }
}

fn answers(appended: Vec<polyport_ledger::Appended>) -> RVec<Appended> {
    appended
        .into_iter()
        .map(|a| Appended {
            base_offset: a.base_offset,
            ledger_id: a.ledger_id,
            entry_id: a.entry_id,
            publish_time_ms: a.publish_time_ms,
        })
        .collect()
}
