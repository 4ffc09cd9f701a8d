//! [`Partition`]: one partition's handle, through which a handler appends,
//! reads, waits, and keeps cursors.

use std::{future::Future, pin::Pin, task::Poll};

use abi_stable::std_types::RVec;

use crate::{
    convert::Message,
    storage::{
        Ack, AppendResult, CursorInfo, CursorReadRequest, Entry, FfiNewEntry, FfiPartitionBox, InitialPosition,
        LogRange, NewEntry, Position, ReadRequest, ReadResult,
    },
    HandlerError, Host,
};

/// One partition (a non-partitioned topic, or one partition of a
/// partitioned topic), opened with [`Host::open_partition`]. Cheap to clone
/// and to keep: every call crosses the boundary once and parses no name.
///
/// Offsets are dense message offsets (Kafka's): an entry of `count`
/// messages at `base_offset` holds offsets `base_offset..base_offset+count`.
/// Pulsar's message ids ([`Position`]) address the same messages.
#[derive(Clone)]
pub struct Partition {
    inner: FfiPartitionBox,
    name: String,
    host: Host,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Partition").field(&self.name).finish()
    }
}

impl Partition {
    /// Wraps the host's handle.
    pub fn from_ffi(inner: FfiPartitionBox, host: Host) -> Self {
        let name = inner.name().into_string();
        Self { inner, name, host }
    }

    /// The raw handle, for code that passes it on.
    pub fn as_ffi(&self) -> &FfiPartitionBox {
        &self.inner
    }

    /// The canonical name: `persistent://tenant/ns/topic` or
    /// `persistent://tenant/ns/topic-partition-N`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends `entries` in one call. Completes once they are durable under
    /// the broker's sync policy, or, with `durable` false, once written
    /// (Kafka's acks=1). The answer carries each entry's offset and publish
    /// time and the range just after, so a produce needs nothing else.
    ///
    /// Order: the first poll of the returned future queues the entries on
    /// the partition's writer, so appends are stored in the order their
    /// futures were first polled (a Kafka connection's pipelined produces
    /// rely on it).
    ///
    /// ```no_run
    /// # async fn f(p: polyport_handler_api::Partition) -> Result<(), polyport_handler_api::HandlerError> {
    /// use polyport_handler_api::{bytes::Bytes, storage::NewEntry};
    /// let entry = NewEntry { payload: Bytes::from_static(b"hi"), count: 1, format: 100, flags: 0, max_timestamp_ms: -1 };
    /// let result = p.append(vec![entry], true).await?;
    /// assert_eq!(result.appended.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn append(
        &self,
        entries: Vec<NewEntry>,
        durable: bool,
    ) -> impl Future<Output = Result<AppendResult, HandlerError>> + Send + 'static {
        let entries: RVec<FfiNewEntry> = entries.into_iter().map(FfiNewEntry::from).collect();
        let call = self.inner.append(entries, RVec::new(), durable);
        async move { call.await.into_result() }
    }

    /// [`append`](Self::append) with the CRC-32C (Castagnoli) of each
    /// entry's payload, which the handler already knows (e.g. derived from
    /// its format's own checksum with `crc32c_combine`): the host then does
    /// not read every byte to compute it. A wrong CRC makes the entry fail
    /// its check once it is read from the disk (a corrupt entry; reads from
    /// the tail cache do not compute it again, so the error can come long
    /// after the append), so give only CRCs you computed or verified over
    /// the exact payload.
    pub fn append_checked(
        &self,
        entries: Vec<(NewEntry, u32)>,
        durable: bool,
    ) -> impl Future<Output = Result<AppendResult, HandlerError>> + Send + 'static {
        let (entries, crcs): (RVec<FfiNewEntry>, RVec<u32>) =
            entries.into_iter().map(|(e, crc)| (FfiNewEntry::from(e), crc)).unzip();
        let call = self.inner.append(entries, crcs, durable);
        async move { call.await.into_result() }
    }

    /// Reads from the entry holding `request.offset`, at most
    /// `request.max_entries` entries and `request.max_bytes` bytes (the
    /// first entry is always whole). At the end of the log, waits up to
    /// `request.wait_ms` for new entries. An offset outside the range is
    /// [`ErrorKind::OUT_OF_RANGE`](crate::ErrorKind::OUT_OF_RANGE), naming the range.
    pub async fn read(&self, request: ReadRequest) -> Result<ReadResult, HandlerError> {
        Ok(self.inner.read(request).await.into_result()?.into())
    }

    /// Waits up to `wait_ms` for the log to hold `offset` (its end to pass
    /// it); answers the range then, whether it did or the time ran out.
    /// For several partitions at once, see [`wait_any`].
    pub fn wait(
        &self,
        offset: u64,
        wait_ms: u32,
    ) -> impl Future<Output = Result<LogRange, HandlerError>> + Send + 'static {
        let call = self.inner.wait(offset, wait_ms);
        async move { call.await.into_result() }
    }

    /// The stored range: first offset to end (exclusive; Kafka's high watermark).
    pub async fn range(&self) -> Result<LogRange, HandlerError> {
        self.inner.range().await.into_result()
    }

    /// The first entry with a message timestamp at least `timestamp_ms`.
    pub async fn find_by_time(&self, timestamp_ms: i64) -> Result<Option<Entry>, HandlerError> {
        let found = self.inner.find_by_time(timestamp_ms).await.into_result()?;
        Ok(found.into_option().map(Entry::from))
    }

    /// Deletes every message below `offset` (the log start moves there,
    /// durably); answers the new range.
    pub async fn delete_records(&self, offset: u64) -> Result<LogRange, HandlerError> {
        self.inner.delete_records(offset).await.into_result()
    }

    /// The offset of the message at `position` (a Pulsar MessageId).
    pub async fn message_id_to_offset(&self, position: Position) -> Result<u64, HandlerError> {
        self.inner.message_id_to_offset(position).await.into_result()
    }

    /// The position (Pulsar MessageId) of the message at `offset`.
    pub async fn offset_to_message_id(&self, offset: u64) -> Result<Position, HandlerError> {
        self.inner.offset_to_message_id(offset).await.into_result()
    }

    /// Opens cursor `name` (a subscription, a group), creating it at
    /// `initial` if new. A durable cursor survives restarts.
    pub async fn cursor_open(
        &self,
        name: &str,
        durable: bool,
        initial: InitialPosition,
    ) -> Result<CursorInfo, HandlerError> {
        self.inner.cursor_open(name.into(), durable, initial).await.into_result()
    }

    /// Acknowledges on cursor `name`.
    pub async fn cursor_ack(&self, name: &str, ack: Ack) -> Result<CursorInfo, HandlerError> {
        self.inner.cursor_ack(name.into(), ack).await.into_result()
    }

    /// Moves cursor `name` to `offset` (its mark-delete and read position).
    pub async fn cursor_seek(&self, name: &str, offset: u64) -> Result<CursorInfo, HandlerError> {
        self.inner.cursor_seek(name.into(), offset).await.into_result()
    }

    /// Reads from cursor `name`'s read position (where its previous read
    /// ended; its mark-delete after a restart, a seek, or with `rewind`) and
    /// moves the read position past what it returns.
    pub async fn cursor_read(&self, name: &str, request: CursorReadRequest) -> Result<ReadResult, HandlerError> {
        Ok(self.inner.cursor_read(name.into(), request).await.into_result()?.into())
    }

    /// Deletes cursor `name`.
    pub async fn cursor_delete(&self, name: &str) -> Result<(), HandlerError> {
        self.inner.cursor_delete(name.into()).await.into_result()
    }

    /// Every cursor, with its backlog.
    pub async fn cursors(&self) -> Result<Vec<CursorInfo>, HandlerError> {
        Ok(self.inner.cursor_list().await.into_result()?.into_vec())
    }

    /// The messages of an entry of this partition that another protocol
    /// wrote (`entry.meta.format` is not the caller's), converted as a
    /// reader of this partition sees them: a message split over several
    /// entries (a Pulsar chunked message) is whole at its last entry, and
    /// the entries before that hold no message (an empty list). Large
    /// entries are converted on the host's blocking threads.
    pub async fn convert_entry(&self, entry: &Entry) -> Result<Vec<Message>, HandlerError> {
        let payload = crate::storage::FfiBytes::from_bytes(entry.payload.clone());
        let messages = self.inner.decode_at(entry.meta.base_offset, entry.meta.format, payload).await.into_result()?;
        Ok(messages.into_iter().map(Message::from).collect())
    }

    /// The host this partition was opened from.
    pub fn host(&self) -> &Host {
        &self.host
    }
}

/// Waits up to `wait_ms` for the first of `waits` (a partition and the
/// offset wanted from it) to hold its offset; answers its index, or `None`
/// when the time ran out (or `waits` is empty). How a long-polling read of
/// many partitions (a Kafka fetch) sleeps until any of them has news.
pub async fn wait_any(waits: &[(&Partition, u64)], wait_ms: u32) -> Option<usize> {
    if waits.is_empty() || wait_ms == 0 {
        return None;
    }
    type Wait = Pin<Box<dyn Future<Output = Result<LogRange, HandlerError>> + Send>>;
    let mut pending: Vec<Option<(Wait, u64)>> =
        waits.iter().map(|(p, offset)| Some((Box::pin(p.wait(*offset, wait_ms)) as Wait, *offset))).collect();
    std::future::poll_fn(move |cx| {
        let mut all_done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            let Some((wait, offset)) = slot else { continue };
            match wait.as_mut().poll(cx) {
                Poll::Ready(Ok(range)) if range.end > *offset => return Poll::Ready(Some(i)),
                // An error is news too: the caller's next read reports it.
                Poll::Ready(Err(_)) => return Poll::Ready(Some(i)),
                // This one ran out: it is not polled again.
                Poll::Ready(Ok(_)) => *slot = None,
                Poll::Pending => all_done = false,
            }
        }
        if all_done {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    })
    .await
}
