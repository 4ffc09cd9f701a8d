//! The storage services: topics and ledgers for handlers. Every call maps
//! host errors to [`HandlerError`] kinds that name the cause.

use std::{sync::Arc, time::Duration};

use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec, Tuple2};
use async_ffi::{FfiFuture, FutureExt as _};
use polyport_handler_api::{
    storage::{
        Ack, Appended, CursorInfo, CursorReadRequest, EntryMeta, FfiBytes, FfiEntry, FfiNewEntry, FfiReadResult,
        InitialPosition, LogRange, Position, ReadRequest, TopicConfig, TopicInfo, TopicLookup, TopicPolicies, UNSET,
    },
    ErrorKind, HandlerError,
};
use polyport_ledger::{LedgerError, ManagedLedger, NewEntry, ReadLimits};

use super::HostServices;
use crate::topics::{TopicError, TopicName};

/// A Pulsar entry that decodes to at most this many bytes is converted on
/// the caller's worker; a larger one (up to 256 MiB) on a blocking thread.
/// Converting 64 KiB takes microseconds, less than the trip to a blocking
/// thread and back.
const INLINE_DECODE_BYTES: usize = 64 << 10;

pub(super) fn topic_error(e: TopicError) -> HandlerError {
    let kind = match &e {
        TopicError::InvalidName(_) | TopicError::Invalid(_) => ErrorKind::INVALID_ARGUMENT,
        TopicError::NotFound(_) | TopicError::NamespaceNotFound(_) => ErrorKind::NOT_FOUND,
        TopicError::AlreadyExists(_) => ErrorKind::ALREADY_EXISTS,
        TopicError::Ledger { source, .. } => return ledger_kind(source, e.to_string()),
        TopicError::Metadata(_) => ErrorKind::STORAGE,
    };
    HandlerError::new(kind, e.to_string())
}

fn ledger_kind(e: &LedgerError, message: String) -> HandlerError {
    let kind = match e {
        LedgerError::OffsetOutOfRange { .. } => ErrorKind::OUT_OF_RANGE,
        LedgerError::NoSuchEntry { .. } | LedgerError::NoSuchCursor { .. } => ErrorKind::NOT_FOUND,
        LedgerError::InvalidEntry(_) => ErrorKind::INVALID_ARGUMENT,
        LedgerError::DiskFull { .. } => ErrorKind::DISK_FULL,
        LedgerError::Corrupt { .. } => ErrorKind::CORRUPT,
        LedgerError::Io { .. } | LedgerError::Failed { .. } | LedgerError::Closed(_) => ErrorKind::STORAGE,
    };
    HandlerError::new(kind, message)
}

fn ledger_error(e: LedgerError) -> HandlerError {
    let message = e.to_string();
    ledger_kind(&e, message)
}

fn parse(topic: &str) -> Result<TopicName, HandlerError> {
    TopicName::parse(topic).map_err(|e| HandlerError::new(ErrorKind::INVALID_ARGUMENT, e.to_string()))
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

impl HostServices {
    /// Runs `f` on the runtime as an FFI future (callable from any thread).
    fn run<T, F>(&self, f: impl FnOnce(Self) -> F) -> FfiFuture<RResult<T, HandlerError>>
    where
        F: std::future::Future<Output = Result<T, HandlerError>> + Send + 'static,
        T: Send + 'static,
    {
        let _guard = self.runtime.enter();
        let future = f(self.clone());
        async move { RResult::from(future.await) }.into_ffi()
    }

    async fn ledger(&self, partition: &str, auto_create: bool) -> Result<Arc<ManagedLedger>, HandlerError> {
        self.topics.ledger(&parse(partition)?, auto_create).await.map_err(topic_error)
    }

    pub(super) fn lookup_impl(&self, topic: RStr<'_>) -> FfiFuture<RResult<TopicLookup, HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(move |host| async move {
            let name = parse(&topic)?;
            Ok(TopicLookup {
                topic: name.to_string().into(),
                broker_address: host.advertised_address.clone().into(),
                local: true,
            })
        })
    }

    pub(super) fn partitioned_metadata_impl(
        &self,
        topic: RStr<'_>,
        auto_create: bool,
    ) -> FfiFuture<RResult<u32, HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(
            move |host| async move { host.topics.partitions(&parse(&topic)?, auto_create).await.map_err(topic_error) },
        )
    }

    pub(super) fn create_topic_impl(&self, topic: RStr<'_>, partitions: u32) -> FfiFuture<RResult<(), HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(move |host| async move {
            host.topics.create(&parse(&topic)?, partitions).await.map(|_| ()).map_err(topic_error)
        })
    }

    pub(super) fn delete_topic_impl(&self, topic: RStr<'_>) -> FfiFuture<RResult<(), HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(move |host| async move { host.topics.delete(&parse(&topic)?).await.map_err(topic_error) })
    }

    pub(super) fn list_topics_impl(&self, namespace: RStr<'_>) -> FfiFuture<RResult<RVec<TopicInfo>, HandlerError>> {
        let namespace = namespace.as_str().to_owned();
        self.run(move |host| async move {
            let topics = host.topics.list(&namespace).await.map_err(topic_error)?;
            Ok(topics
                .into_iter()
                .map(|(n, p)| TopicInfo { name: RString::from(n.to_string()), partitions: p })
                .collect())
        })
    }

    pub(super) fn append_impl(
        &self,
        partition: RStr<'_>,
        entries: RVec<FfiNewEntry>,
        durable: bool,
    ) -> FfiFuture<RResult<RVec<Appended>, HandlerError>> {
        let partition = partition.as_str().to_owned();
        self.run(move |host| {
            placed_at_first_poll(async move {
                let ledger = host.ledger(&partition, true).await?;
                let entries = entries.into_iter().map(new_entry).collect();
                let appended = ledger.append_with(entries, durable).await.map_err(ledger_error)?;
                Ok(answers(appended))
            })
        })
    }

    pub(super) fn append_checked_impl(
        &self,
        partition: RStr<'_>,
        entries: RVec<FfiNewEntry>,
        crcs: RVec<u32>,
        durable: bool,
    ) -> FfiFuture<RResult<RVec<Appended>, HandlerError>> {
        let partition = partition.as_str().to_owned();
        self.run(move |host| {
            placed_at_first_poll(async move {
                if crcs.len() != entries.len() {
                    let message = format!("{} CRCs for {} entries", crcs.len(), entries.len());
                    return Err(HandlerError::new(polyport_handler_api::ErrorKind::INVALID_ARGUMENT, message));
                }
                let ledger = host.ledger(&partition, true).await?;
                let entries = entries.into_iter().map(new_entry).zip(crcs).collect();
                let appended = ledger.append_checked(entries, durable).await.map_err(ledger_error)?;
                Ok(answers(appended))
            })
        })
    }

    pub(super) fn read_impl(
        &self,
        partition: RStr<'_>,
        request: ReadRequest,
    ) -> FfiFuture<RResult<FfiReadResult, HandlerError>> {
        let partition = partition.as_str().to_owned();
        self.run(move |host| async move {
            let ledger = host.ledger(&partition, false).await?;
            let (limits, wait) = read_bounds(request.max_entries, request.max_bytes, request.wait_ms);
            let batch = ledger.read(request.offset, limits, wait).await.map_err(ledger_error)?;
            Ok(read_result(batch))
        })
    }

    pub(super) fn decode_entry_at_impl(
        &self,
        partition: RStr<'_>,
        base_offset: u64,
        format: u16,
        payload: polyport_handler_api::storage::FfiBytes,
    ) -> FfiFuture<RResult<RVec<polyport_handler_api::convert::FfiMessage>, HandlerError>> {
        use crate::pulsar::chunks::{self, Chunk};
        let partition = partition.as_str().to_owned();
        let raw = bytes::Bytes::from_owner(payload);
        self.run(move |host| async move {
            let converters = Arc::clone(&host.converters);
            if format != crate::pulsar::FORMAT_PULSAR {
                // Another handler's format: its converter, on a blocking thread.
                return tokio::task::spawn_blocking(move || converters.decode_ffi(format, &raw))
                    .await
                    .map_err(|e| HandlerError::new(polyport_handler_api::ErrorKind::PANICKED, e.to_string()))?;
            }
            let (metadata, payload) = crate::pulsar::frame::split_section(&raw).ok_or_else(|| {
                HandlerError::new(polyport_handler_api::ErrorKind::CORRUPT, "Pulsar entry: metadata does not decode")
            })?;
            let (metadata, payload) = match chunks::chunk_of(&metadata) {
                Chunk::Whole => (metadata, payload),
                Chunk::Partial => return Ok(RVec::new()),
                Chunk::Last => {
                    let ledger = host.ledger(&partition, false).await?;
                    let whole = chunks::assemble(&ledger, base_offset, metadata, payload)
                        .await
                        .map_err(|e| HandlerError::new(polyport_handler_api::ErrorKind::CORRUPT, e))?;
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
                    .map(|messages| messages.into_iter().map(polyport_handler_api::convert::FfiMessage::from).collect())
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
                .map_err(|e| HandlerError::new(polyport_handler_api::ErrorKind::PANICKED, e.to_string()))?
        })
    }

    pub(super) fn log_range_impl(&self, partition: RStr<'_>) -> FfiFuture<RResult<LogRange, HandlerError>> {
        let partition = partition.as_str().to_owned();
        self.run(move |host| async move {
            let r = host.ledger(&partition, false).await?.range();
            Ok(LogRange { start: r.start, end: r.end })
        })
    }

    pub(super) fn find_by_time_impl(
        &self,
        partition: RStr<'_>,
        ts: i64,
    ) -> FfiFuture<RResult<ROption<FfiEntry>, HandlerError>> {
        let partition = partition.as_str().to_owned();
        self.run(move |host| async move {
            let ledger = host.ledger(&partition, false).await?;
            let found = ledger.nonblocking(move |l| l.find_by_time(ts)).await.map_err(ledger_error)?;
            Ok(found.map(entry).into())
        })
    }

    pub(super) fn cursor_open_impl(
        &self,
        partition: RStr<'_>,
        name: RStr<'_>,
        durable: bool,
        initial: InitialPosition,
    ) -> FfiFuture<RResult<CursorInfo, HandlerError>> {
        let (partition, name) = (partition.as_str().to_owned(), name.as_str().to_owned());
        self.run(move |host| async move {
            let ledger = host.ledger(&partition, true).await?;
            let initial = match initial {
                InitialPosition::Earliest => polyport_ledger::InitialPosition::Earliest,
                InitialPosition::Latest => polyport_ledger::InitialPosition::Latest,
                InitialPosition::Offset(o) => polyport_ledger::InitialPosition::Offset(o),
            };
            ledger.open_cursor(&name, durable, initial).await.map(cursor_info).map_err(ledger_error)
        })
    }

    pub(super) fn cursor_ack_impl(
        &self,
        partition: RStr<'_>,
        name: RStr<'_>,
        ack: Ack,
    ) -> FfiFuture<RResult<CursorInfo, HandlerError>> {
        let (partition, name) = (partition.as_str().to_owned(), name.as_str().to_owned());
        self.run(move |host| async move {
            let ledger = host.ledger(&partition, false).await?;
            let ack = match ack {
                Ack::Cumulative(o) => polyport_ledger::Ack::Cumulative(o),
                Ack::Individual(ranges) => {
                    polyport_ledger::Ack::Individual(ranges.into_iter().map(|t| (t.0, t.1)).collect())
                }
            };
            ledger.acknowledge(&name, &ack).map(cursor_info).map_err(ledger_error)
        })
    }

    pub(super) fn cursor_seek_impl(
        &self,
        partition: RStr<'_>,
        name: RStr<'_>,
        offset: u64,
    ) -> FfiFuture<RResult<CursorInfo, HandlerError>> {
        let (partition, name) = (partition.as_str().to_owned(), name.as_str().to_owned());
        self.run(move |host| async move {
            let ledger = host.ledger(&partition, false).await?;
            ledger.seek_cursor(&name, offset).map(cursor_info).map_err(ledger_error)
        })
    }

    pub(super) fn cursor_delete_impl(
        &self,
        partition: RStr<'_>,
        name: RStr<'_>,
    ) -> FfiFuture<RResult<(), HandlerError>> {
        let (partition, name) = (partition.as_str().to_owned(), name.as_str().to_owned());
        self.run(move |host| async move {
            host.ledger(&partition, false).await?.delete_cursor(&name).await.map_err(ledger_error)
        })
    }

    pub(super) fn cursor_list_impl(&self, partition: RStr<'_>) -> FfiFuture<RResult<RVec<CursorInfo>, HandlerError>> {
        let partition = partition.as_str().to_owned();
        self.run(move |host| async move {
            Ok(host.ledger(&partition, false).await?.cursors().into_iter().map(cursor_info).collect())
        })
    }

    pub(super) fn message_id_to_offset_impl(
        &self,
        partition: RStr<'_>,
        position: Position,
    ) -> FfiFuture<RResult<u64, HandlerError>> {
        let partition = partition.as_str().to_owned();
        self.run(move |host| async move {
            let ledger = host.ledger(&partition, false).await?;
            let position = polyport_ledger::Position {
                ledger_id: position.ledger_id,
                entry_id: position.entry_id,
                batch_index: position.batch_index,
            };
            ledger.nonblocking(move |l| l.offset_of(position)).await.map_err(ledger_error)
        })
    }

    pub(super) fn topic_config_impl(&self, topic: RStr<'_>) -> FfiFuture<RResult<TopicConfig, HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(move |host| async move {
            let name = parse(&topic)?;
            let (effective, own) = host.topics.effective_policies(&name).await.map_err(topic_error)?;
            let overrides = TopicPolicies {
                retention_ms: own
                    .retention_ms
                    .or(own.retention_time_in_minutes.map(|m| if m < 0 { -1 } else { m.saturating_mul(60_000) }))
                    .unwrap_or(UNSET),
                retention_bytes: own
                    .retention_bytes
                    .or(own.retention_size_in_mb.map(|m| if m < 0 { -1 } else { m.saturating_mul(1 << 20) }))
                    .unwrap_or(UNSET),
                message_ttl_seconds: own.message_ttl_in_seconds.unwrap_or(UNSET),
            };
            let effective = TopicPolicies {
                retention_ms: effective.time_ms,
                retention_bytes: effective.size_bytes,
                message_ttl_seconds: effective.ttl_seconds,
            };
            Ok(TopicConfig { overrides, effective })
        })
    }

    pub(super) fn topic_properties_impl(
        &self,
        topic: RStr<'_>,
    ) -> FfiFuture<RResult<RVec<Tuple2<RString, RString>>, HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(move |host| async move {
            let name = parse(&topic)?;
            let record = host.topics.record(&name).await.map_err(topic_error)?;
            let record = record
                .ok_or_else(|| HandlerError::new(ErrorKind::NOT_FOUND, format!("topic {name} does not exist")))?;
            Ok(record.properties.into_iter().map(|(k, v)| Tuple2(RString::from(k), RString::from(v))).collect())
        })
    }

    pub(super) fn update_topic_properties_impl(
        &self,
        topic: RStr<'_>,
        changes: RVec<Tuple2<RString, ROption<RString>>>,
    ) -> FfiFuture<RResult<RVec<Tuple2<RString, RString>>, HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(move |host| async move {
            let changes = changes
                .into_iter()
                .map(|Tuple2(k, v)| (k.into_string(), v.into_option().map(RString::into_string)))
                .collect();
            let properties = host.topics.update_properties(&parse(&topic)?, changes).await.map_err(topic_error)?;
            Ok(properties.into_iter().map(|(k, v)| Tuple2(RString::from(k), RString::from(v))).collect())
        })
    }

    pub(super) fn set_topic_policies_impl(
        &self,
        topic: RStr<'_>,
        p: TopicPolicies,
    ) -> FfiFuture<RResult<(), HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(move |host| async move {
            let set = |v: i64| (v != UNSET).then_some(v);
            let policies = crate::topics::Policies {
                retention_ms: set(p.retention_ms),
                retention_bytes: set(p.retention_bytes),
                message_ttl_in_seconds: set(p.message_ttl_seconds),
                ..Default::default()
            };
            host.topics.set_policies(&parse(&topic)?, policies).await.map_err(topic_error)
        })
    }

    pub(super) fn delete_records_impl(
        &self,
        partition: RStr<'_>,
        offset: u64,
    ) -> FfiFuture<RResult<LogRange, HandlerError>> {
        let partition = partition.as_str().to_owned();
        self.run(move |host| async move {
            let r = host.ledger(&partition, false).await?.delete_records_before(offset).await.map_err(ledger_error)?;
            Ok(LogRange { start: r.start, end: r.end })
        })
    }

    pub(super) fn cursor_read_impl(
        &self,
        partition: RStr<'_>,
        name: RStr<'_>,
        request: CursorReadRequest,
    ) -> FfiFuture<RResult<FfiReadResult, HandlerError>> {
        let (partition, name) = (partition.as_str().to_owned(), name.as_str().to_owned());
        self.run(move |host| async move {
            let ledger = host.ledger(&partition, false).await?;
            let (limits, wait) = read_bounds(request.max_entries, request.max_bytes, request.wait_ms);
            let batch = ledger.read_cursor(&name, limits, wait, request.rewind).await.map_err(ledger_error)?;
            Ok(read_result(batch))
        })
    }

    pub(super) fn create_partitions_impl(&self, topic: RStr<'_>, count: u32) -> FfiFuture<RResult<(), HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(
            move |host| async move { host.topics.create_partitions(&parse(&topic)?, count).await.map_err(topic_error) },
        )
    }

    pub(super) fn create_namespace_impl(&self, namespace: RStr<'_>) -> FfiFuture<RResult<(), HandlerError>> {
        let namespace = namespace.as_str().to_owned();
        self.run(move |host| async move { host.topics.ensure_namespace(&namespace).await.map_err(topic_error) })
    }

    pub(super) fn offset_to_message_id_impl(
        &self,
        partition: RStr<'_>,
        offset: u64,
    ) -> FfiFuture<RResult<Position, HandlerError>> {
        let partition = partition.as_str().to_owned();
        self.run(move |host| async move {
            let ledger = host.ledger(&partition, false).await?;
            let p = ledger.nonblocking(move |l| l.position(offset)).await.map_err(ledger_error)?;
            Ok(Position { ledger_id: p.ledger_id, entry_id: p.entry_id, batch_index: p.batch_index })
        })
    }
}

/// The ledger's bounds for a handler's read: `wait_ms` 0 answers at once.
fn read_bounds(max_entries: u32, max_bytes: u32, wait_ms: u32) -> (ReadLimits, Option<Duration>) {
    let limits = ReadLimits { max_entries: max_entries as usize, max_bytes: max_bytes as usize };
    (limits, (wait_ms > 0).then(|| Duration::from_millis(u64::from(wait_ms))))
}

fn read_result(batch: polyport_ledger::ReadBatch) -> FfiReadResult {
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
