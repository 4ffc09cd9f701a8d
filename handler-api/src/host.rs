//! The host services as a handler uses them.

use std::{
    future::Future,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use abi_stable::std_types::{RStr, RString, RVec, Tuple2};
use async_ffi::FutureExt;
use tokio::sync::oneshot;

use crate::{
    ffi::{FfiHostBox, FfiJoinHandleBox, LogLevel},
    storage::{
        Ack, Appended, CursorInfo, CursorReadRequest, Entry, FfiNewEntry, InitialPosition, LogRange, NewEntry,
        Position, ReadRequest, ReadResult, TopicConfig, TopicLookup, TopicPolicies,
    },
    ErrorKind, HandlerError,
};

/// The host's services: the only way a handler reaches the runtime, timers,
/// topics and their storage (appends, reads, cursors, offsets, properties),
/// and the conversion of other protocols' entries. Cheap to clone; usable
/// from any thread.
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

/// The storage services. Topic arguments are Pulsar names
/// (`persistent://tenant/ns/topic`, `tenant/ns/topic`, or `topic` in
/// `public/default`); `partition` arguments name a non-partitioned topic or
/// one partition (`topic-partition-N`). Each call crosses the boundary once,
/// whatever the number of entries it carries.
impl Host {
    /// Which broker owns `topic` (on one broker: this one), and its canonical name.
    pub async fn lookup(&self, topic: &str) -> Result<TopicLookup, HandlerError> {
        self.inner.lookup(topic.into()).await.into_result()
    }

    /// Partition count of `topic` (0: non-partitioned); with `auto_create`, a
    /// missing topic is created per `allowAutoTopicCreation*`.
    pub async fn partitioned_metadata(&self, topic: &str, auto_create: bool) -> Result<u32, HandlerError> {
        self.inner.partitioned_metadata(topic.into(), auto_create).await.into_result()
    }

    /// Creates `topic` with `partitions` (0: non-partitioned).
    pub async fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), HandlerError> {
        self.inner.create_topic(topic.into(), partitions).await.into_result()
    }

    /// Deletes `topic` and its data.
    pub async fn delete_topic(&self, topic: &str) -> Result<(), HandlerError> {
        self.inner.delete_topic(topic.into()).await.into_result()
    }

    /// The topics of `tenant/namespace`, with their partition counts.
    pub async fn list_topics(&self, namespace: &str) -> Result<Vec<(String, u32)>, HandlerError> {
        let topics = self.inner.list_topics(namespace.into()).await.into_result()?;
        Ok(topics.into_iter().map(|t| (t.name.into_string(), t.partitions)).collect())
    }

    /// Appends `entries` to `partition` (auto-created if allowed). Completes
    /// once they are durable under the broker's sync policy, or, with
    /// `durable` false, once written (Kafka's acks=1).
    ///
    /// Order: on a partition that is open (one this process has read, looked
    /// up with [`log_range`](Self::log_range) or appended to), the first poll
    /// of the returned future queues the entries on the partition's writer,
    /// so appends are stored in the order their futures were first polled. On a
    /// partition that is not open yet, the first poll may wait for it to
    /// open, and a later append can overtake it: a handler that must keep an
    /// order (Kafka's per-connection order) opens the partition first.
    pub async fn append(
        &self,
        partition: &str,
        entries: Vec<NewEntry>,
        durable: bool,
    ) -> Result<Vec<Appended>, HandlerError> {
        let entries = entries.into_iter().map(FfiNewEntry::from).collect();
        Ok(self.inner.append(partition.into(), entries, durable).await.into_result()?.into_vec())
    }

    /// [`append`](Self::append) with the CRC-32C (Castagnoli) of each
    /// entry's payload, which the handler already knows (e.g. derived from
    /// its format's own checksum with `crc32c_combine`): the host then does
    /// not read every byte to compute it. A wrong CRC makes the entry fail
    /// its check once it is read from the disk (a corrupt entry; reads from
    /// the tail cache do not compute it again, so the error can come long
    /// after the append), so give only CRCs you computed or verified over
    /// the exact payload.
    pub async fn append_checked(
        &self,
        partition: &str,
        entries: Vec<(NewEntry, u32)>,
        durable: bool,
    ) -> Result<Vec<Appended>, HandlerError> {
        let (entries, crcs): (RVec<FfiNewEntry>, RVec<u32>) =
            entries.into_iter().map(|(e, crc)| (FfiNewEntry::from(e), crc)).unzip();
        Ok(self.inner.append_checked(partition.into(), entries, crcs, durable).await.into_result()?.into_vec())
    }

    /// Reads from the entry holding `request.offset`.
    pub async fn read(&self, partition: &str, request: ReadRequest) -> Result<ReadResult, HandlerError> {
        Ok(self.inner.read(partition.into(), request).await.into_result()?.into())
    }

    /// The stored range of `partition`.
    pub async fn log_range(&self, partition: &str) -> Result<LogRange, HandlerError> {
        self.inner.log_range(partition.into()).await.into_result()
    }

    /// The first entry with a message timestamp at least `timestamp_ms`.
    pub async fn find_by_time(&self, partition: &str, timestamp_ms: i64) -> Result<Option<Entry>, HandlerError> {
        let found = self.inner.find_by_time(partition.into(), timestamp_ms).await.into_result()?;
        Ok(found.into_option().map(Entry::from))
    }

    /// Opens cursor `name` on `partition`, creating it at `initial` if new.
    pub async fn cursor_open(
        &self,
        partition: &str,
        name: &str,
        durable: bool,
        initial: InitialPosition,
    ) -> Result<CursorInfo, HandlerError> {
        self.inner.cursor_open(partition.into(), name.into(), durable, initial).await.into_result()
    }

    /// Acknowledges on cursor `name`.
    pub async fn cursor_ack(&self, partition: &str, name: &str, ack: Ack) -> Result<CursorInfo, HandlerError> {
        self.inner.cursor_ack(partition.into(), name.into(), ack).await.into_result()
    }

    /// Moves cursor `name` to `offset`.
    pub async fn cursor_seek(&self, partition: &str, name: &str, offset: u64) -> Result<CursorInfo, HandlerError> {
        self.inner.cursor_seek(partition.into(), name.into(), offset).await.into_result()
    }

    /// Deletes cursor `name`.
    pub async fn cursor_delete(&self, partition: &str, name: &str) -> Result<(), HandlerError> {
        self.inner.cursor_delete(partition.into(), name.into()).await.into_result()
    }

    /// Every cursor of `partition`, with its backlog.
    pub async fn cursor_list(&self, partition: &str) -> Result<Vec<CursorInfo>, HandlerError> {
        Ok(self.inner.cursor_list(partition.into()).await.into_result()?.into_vec())
    }

    /// The offset of the message at `position` (a Pulsar MessageId).
    pub async fn message_id_to_offset(&self, partition: &str, position: Position) -> Result<u64, HandlerError> {
        self.inner.message_id_to_offset(partition.into(), position).await.into_result()
    }

    /// The retention policies of `topic`: its own overrides and those in force.
    pub async fn topic_config(&self, topic: &str) -> Result<TopicConfig, HandlerError> {
        self.inner.topic_config(topic.into()).await.into_result()
    }

    /// Replaces the retention overrides of `topic` ([`UNSET`](crate::storage::UNSET) fields inherit).
    pub async fn set_topic_policies(&self, topic: &str, policies: TopicPolicies) -> Result<(), HandlerError> {
        self.inner.set_topic_policies(topic.into(), policies).await.into_result()
    }

    /// Deletes every message of `partition` below `offset` (the log start moves there).
    pub async fn delete_records(&self, partition: &str, offset: u64) -> Result<LogRange, HandlerError> {
        self.inner.delete_records(partition.into(), offset).await.into_result()
    }

    /// Reads from cursor `name`'s read position (where its previous read
    /// ended; its mark-delete after a restart, a seek, or with `rewind`) and
    /// moves the read position past what it returns.
    pub async fn cursor_read(
        &self,
        partition: &str,
        name: &str,
        request: CursorReadRequest,
    ) -> Result<ReadResult, HandlerError> {
        Ok(self.inner.cursor_read(partition.into(), name.into(), request).await.into_result()?.into())
    }

    /// Raises the partition count of partitioned `topic` to `count`.
    pub async fn create_partitions(&self, topic: &str, count: u32) -> Result<(), HandlerError> {
        self.inner.create_partitions(topic.into(), count).await.into_result()
    }

    /// Registers `converter` for the entries this handler writes with format
    /// tag `format`, so readers of other protocols can read them.
    pub fn register_converter(&self, format: u16, converter: impl crate::convert::Converter) {
        let boxed = crate::convert::FfiConverter_TO::from_value(
            crate::convert::Guarded(converter),
            abi_stable::sabi_trait::TD_Opaque,
        );
        self.inner.register_converter(format, boxed);
    }

    /// The messages of an entry written in `format` by another protocol,
    /// converted on the caller's thread: for small entries only; an entry
    /// read from storage goes through [`convert_entry`](Self::convert_entry).
    pub fn decode_entry(&self, format: u16, payload: &[u8]) -> Result<Vec<crate::convert::Message>, HandlerError> {
        let messages = self.inner.decode_entry(format, payload.into()).into_result()?;
        Ok(messages.into_iter().map(crate::convert::Message::from).collect())
    }

    /// The properties of `topic` (Pulsar's topic properties): strings a
    /// protocol keeps with a topic, such as its own per-topic settings.
    pub async fn topic_properties(&self, topic: &str) -> Result<Vec<(String, String)>, HandlerError> {
        let properties = self.inner.topic_properties(topic.into()).await.into_result()?;
        Ok(properties.into_iter().map(|Tuple2(k, v)| (k.into_string(), v.into_string())).collect())
    }

    /// Sets (`Some`) or removes (`None`) properties of `topic` in one
    /// change; answers the properties now in force.
    pub async fn update_topic_properties(
        &self,
        topic: &str,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<Vec<(String, String)>, HandlerError> {
        let changes = changes.into_iter().map(|(k, v)| Tuple2(RString::from(k), v.map(RString::from).into())).collect();
        let properties = self.inner.update_topic_properties(topic.into(), changes).await.into_result()?;
        Ok(properties.into_iter().map(|Tuple2(k, v)| (k.into_string(), v.into_string())).collect())
    }

    /// [`decode_entry`](Self::decode_entry) on one of the host's blocking
    /// threads: a conversion decompresses (up to 256 MiB) and re-encodes,
    /// which must not hold up the connections a runtime worker serves.
    pub async fn convert_entry(
        &self,
        format: u16,
        payload: bytes::Bytes,
    ) -> Result<Vec<crate::convert::Message>, HandlerError> {
        let payload = crate::storage::FfiBytes::from_bytes(payload);
        let messages = self.inner.decode_entry_async(format, payload).await.into_result()?;
        Ok(messages.into_iter().map(crate::convert::Message::from).collect())
    }

    /// [`convert_entry`](Self::convert_entry) for the entry at `base_offset`
    /// of `partition`, as a reader of that partition sees it: a message
    /// another protocol split over several entries (a Pulsar chunked
    /// message) is whole at its last entry, and the entries before that
    /// hold no message (an empty list).
    pub async fn convert_entry_at(
        &self,
        partition: &str,
        base_offset: u64,
        format: u16,
        payload: bytes::Bytes,
    ) -> Result<Vec<crate::convert::Message>, HandlerError> {
        let payload = crate::storage::FfiBytes::from_bytes(payload);
        let messages =
            self.inner.decode_entry_at(partition.into(), base_offset, format, payload).await.into_result()?;
        Ok(messages.into_iter().map(crate::convert::Message::from).collect())
    }

    /// An entry payload in `format` (one the host owns: Pulsar, tag 2)
    /// holding `messages`: how a handler stores its messages in another
    /// protocol's format (Kafka's `entryFormat=pulsar`).
    pub fn encode_entry(
        &self,
        format: u16,
        messages: Vec<crate::convert::Message>,
        sequence: u64,
    ) -> Result<bytes::Bytes, HandlerError> {
        let messages = messages.into_iter().map(crate::convert::FfiMessage::from).collect();
        let encoded = self.inner.encode_entry(format, messages, sequence).into_result()?;
        Ok(bytes::Bytes::from(encoded.into_vec()))
    }

    /// Creates namespace `tenant/ns` (and its tenant) if missing; topics can
    /// only be created in an existing namespace.
    pub async fn create_namespace(&self, namespace: &str) -> Result<(), HandlerError> {
        self.inner.create_namespace(namespace.into()).await.into_result()
    }

    /// The position (Pulsar MessageId) of the message at `offset`.
    pub async fn offset_to_message_id(&self, partition: &str, offset: u64) -> Result<Position, HandlerError> {
        self.inner.offset_to_message_id(partition.into(), offset).await.into_result()
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
