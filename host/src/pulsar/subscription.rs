//! One subscription of one topic partition: its consumers, permits and
//! outstanding messages, owned by one task that the connections reach by
//! message (no lock is shared with them).
//!
//! The subscription is the ledger cursor of the same name: durable for
//! subscriptions, in memory for readers (non-durable). The task reads from
//! the cursor's read position while some consumer has permits, and hands each
//! entry to a consumer by subscription type:
//! - Exclusive: one consumer (a second is refused with ConsumerBusy);
//! - Failover: the first consumer (by priority level, then arrival) gets
//!   everything; the next one takes over when it leaves;
//! - Shared: entries round-robin over the consumers with permits;
//! - Key_Shared: by a hash of the entry's ordering or partition key.
//!
//! Acknowledgements become cursor acks in offsets (a batch of N messages
//! holds N offsets, so batch-index acks are exact). Unacknowledged messages
//! of a consumer that leaves, asks for redelivery or has its negative acks
//! expire are dispatched again, with their redelivery count.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
    time::Duration,
};

use crate::pulsar::proto::{
    base_command::Type, command_ack::AckType, command_subscribe::SubType, CommandCloseConsumer, CommandMessage,
    MessageIdData, ServerError,
};
use bytes::Bytes;
use polyport_ledger::{Ack, Entry, ManagedLedger, Position, ReadLimits};
use tokio::sync::{mpsc, oneshot};

use super::{
    frame,
    outbox::{NotQueued, Outbox},
    FORMAT_PULSAR,
};
use crate::convert::Converters;

/// A consumer in the broker: its connection, and its id on that connection
/// (client-chosen, so unique only per connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConsumerKey {
    /// The connection's id.
    pub connection: u64,
    /// The client's consumer id.
    pub consumer: u64,
}

/// A consumer, as its subscription knows it.
#[derive(Debug)]
pub struct ConsumerLink {
    /// Unique in the broker.
    pub key: ConsumerKey,
    /// The client's consumer id.
    pub consumer_id: u64,
    /// Priority level (Failover: lower is preferred).
    pub priority: i32,
    /// The subscription type the consumer asked for.
    pub sub_type: SubType,
    /// Frames to the consumer's connection.
    pub out: Outbox,
    /// Messages it may still receive.
    pub permits: i64,
    /// Key_Shared in Sticky mode: the slots of the 65,536-slot key hash
    /// space it takes (inclusive); empty for every other mode.
    pub hash_ranges: Vec<(u32, u32)>,
}

/// A message id's target for Seek.
#[derive(Debug, Clone)]
pub enum SeekTarget {
    /// To this message (inclusive).
    MessageId(MessageIdData),
    /// To the first message published at or after this time (Unix ms).
    PublishTime(u64),
    /// To this offset (the admin API resolves its targets itself).
    Offset(u64),
}

/// A subscription as its stats show it.
#[derive(Debug, Clone)]
pub struct SubscriptionSnapshot {
    /// Its type.
    pub sub_type: SubType,
    /// Whether it is durable (a reader's is not).
    pub durable: bool,
    /// Its consumers.
    pub consumers: Vec<ConsumerSnapshot>,
}

/// A consumer as stats show it.
#[derive(Debug, Clone)]
pub struct ConsumerSnapshot {
    /// The client's consumer id.
    pub consumer_id: u64,
    /// Its connection (broker-wide id).
    pub connection: u64,
    /// Messages it may still receive.
    pub permits: i64,
    /// Messages it holds unacknowledged.
    pub unacked: u64,
    /// Its priority level.
    pub priority: i32,
}

/// A request to a subscription task.
#[derive(Debug)]
pub enum SubCommand {
    /// A new consumer, or why it is refused.
    Add(ConsumerLink, oneshot::Sender<Result<(), (ServerError, String)>>),
    /// The consumer left (close, unsubscribe by another, connection lost).
    Remove(ConsumerKey),
    /// More permits.
    Flow(ConsumerKey, u32),
    /// Acknowledgements; the reply (if any) carries an error message.
    Ack(ConsumerKey, AckType, Vec<MessageIdData>, Option<oneshot::Sender<Result<(), String>>>),
    /// Redeliver these (or all, if empty) unacknowledged messages of the consumer.
    Redeliver(ConsumerKey, Vec<MessageIdData>),
    /// Reset the subscription; its consumers are closed so that they resubscribe.
    Seek(SeekTarget, oneshot::Sender<Result<(), String>>),
    /// Delete the subscription (only its last consumer may).
    Unsubscribe(ConsumerKey, oneshot::Sender<Result<(), String>>),
    /// The topic's last message id and the subscription's mark-delete position.
    LastMessageId(oneshot::Sender<Result<(MessageIdData, MessageIdData), String>>),
    /// Its type and consumers (the admin API's stats).
    Stats(oneshot::Sender<SubscriptionSnapshot>),
    /// Delete the subscription for the admin API (`force`: even with consumers, which are closed).
    Delete(bool, oneshot::Sender<Result<(), DeleteRefused>>),
}

/// Why the admin API's deletion of a subscription did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteRefused {
    /// Consumers are connected (and the deletion was not forced).
    Busy,
    /// The cursor could not be deleted.
    Failed(String),
}

/// How soon held entries ([`Subscription::held`]) look at the stable end again.
const HELD_RECHECK: Duration = Duration::from_millis(50);

/// An entry handed to a consumer and not yet acknowledged.
#[derive(Debug, Clone, Copy)]
struct Outstanding {
    consumer: ConsumerKey,
    count: u32,
}

/// The subscription task's state.
pub struct Subscription {
    ledger: Arc<ManagedLedger>,
    cursor: String,
    sub_type: SubType,
    durable: bool,
    consumers: Vec<ConsumerLink>,
    next: usize,
    /// Base offset of each dispatched, unacknowledged entry.
    outstanding: BTreeMap<u64, Outstanding>,
    /// Entries to dispatch again before reading on.
    replay: BTreeSet<u64>,
    /// Key_Shared: entries whose key's consumer has no permits (or, Sticky,
    /// whose key slot no consumer takes), until permits come or consumers
    /// change.
    parked: BTreeSet<u64>,
    redeliveries: HashMap<u64, u32>,
    /// The next cursor read restarts from the mark-delete.
    rewind: bool,
    /// Formats already reported as not deliverable (logged once).
    skipped_formats: BTreeSet<u16>,
    /// Converters of entries other protocols wrote.
    converters: Arc<Converters>,
    /// Entries held back until their delivery time (Shared and Key_Shared).
    delayed: super::delayed::Tracker,
    /// `delayedDeliveryEnabled`.
    delayed_enabled: bool,
    /// In a cluster: whether this broker still serves the topic.
    served: Option<Served>,
    /// Consumers counted in the ledger's stats.
    counted_consumers: i64,
    /// Entries read at or past the partition's stable end (a handler's read
    /// fence: Kafka's open transactions), dispatched once it moves past
    /// them; nothing more is read meanwhile.
    held: BTreeSet<u64>,
}

/// Whether this broker serves a subscription's topic now (a cluster's owner check).
pub type Served = Box<dyn Fn() -> bool + Send + Sync>;

/// The message id of the entry at `(ledger_id, entry_id)`.
pub fn message_id(ledger_id: u64, entry_id: u64, batch_index: i32) -> MessageIdData {
    MessageIdData { ledger_id, entry_id, batch_index: Some(batch_index), ..Default::default() }
}

/// Pulsar's `MessageId.earliest` ((-1, -1) as unsigned).
pub fn is_earliest(id: &MessageIdData) -> bool {
    id.ledger_id == u64::MAX
}

/// Pulsar's `MessageId.latest` ((i64::MAX, i64::MAX)).
pub fn is_latest(id: &MessageIdData) -> bool {
    id.ledger_id == i64::MAX as u64
}

impl Subscription {
    /// A subscription over the cursor `cursor` of `ledger`.
    pub fn new(
        ledger: Arc<ManagedLedger>,
        served: Option<Served>,
        cursor: String,
        sub_type: SubType,
        durable: bool,
        converters: Arc<Converters>,
        delayed_delivery: Option<Duration>,
    ) -> Self {
        Self {
            ledger,
            cursor,
            sub_type,
            durable,
            consumers: Vec::new(),
            next: 0,
            outstanding: BTreeMap::new(),
            replay: BTreeSet::new(),
            parked: BTreeSet::new(),
            redeliveries: HashMap::new(),
            rewind: false,
            skipped_formats: BTreeSet::new(),
            converters,
            delayed: super::delayed::Tracker::new(delayed_delivery.unwrap_or(Duration::from_secs(1))),
            delayed_enabled: delayed_delivery.is_some(),
            served,
            counted_consumers: 0,
            held: BTreeSet::new(),
        }
    }

    /// Serves until unsubscribed, or (readers) until the last consumer leaves.
    pub async fn run(mut self, mut commands: mpsc::Receiver<SubCommand>) {
        self.serve(&mut commands).await;
        self.ledger.stats().consumers_add(-self.counted_consumers);
    }

    /// Keeps the ledger's count of consumers up to date.
    fn count_consumers(&mut self) {
        let now = self.consumers.len() as i64;
        if now != self.counted_consumers {
            self.ledger.stats().consumers_add(now - self.counted_consumers);
            self.counted_consumers = now;
        }
    }

    async fn serve(&mut self, commands: &mut mpsc::Receiver<SubCommand>) {
        loop {
            self.count_consumers();
            if !self.served() {
                // Another broker owns the topic now (or this one's session
                // may have expired): its consumers reconnect there.
                tracing::info!(topic = %self.ledger.name(), subscription = %self.cursor,
                    "topic no longer served here: consumers closed");
                self.close_consumers().await;
                break;
            }
            if !self.replay.is_empty() && self.has_permits() {
                self.dispatch_replay().await;
            }
            let readable =
                self.has_permits() && self.replay.is_empty() && self.held.is_empty() && self.delayed.has_room();
            // Held entries: the stable end is looked at again shortly (a
            // fence has no event; its move comes with an append, the marker).
            let recheck_held = (!self.held.is_empty()).then(|| tokio::time::Instant::now() + HELD_RECHECK);
            let wake = match (self.delayed.wake_at(), recheck_held) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let timer = async move {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let limits = ReadLimits { max_entries: self.permit_total().clamp(1, 64) as usize, max_bytes: 4 << 20 };
            let ledger = Arc::clone(&self.ledger);
            let cursor = self.cursor.clone();
            let rewind = self.rewind;
            let read = async move {
                if readable {
                    ledger.read_cursor(&cursor, limits, Some(Duration::from_secs(30)), rewind).await
                } else {
                    std::future::pending().await
                }
            };
            // Ownership has no event here: in a cluster, looked at every second.
            let clustered = self.served.is_some();
            let recheck = async move {
                if clustered {
                    tokio::time::sleep(Duration::from_secs(1)).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                () = recheck => {}
                command = commands.recv() => {
                    let Some(command) = command else { break };
                    if !self.handle(command).await {
                        break;
                    }
                }
                () = timer => {
                    // Due now: dispatched like redeliveries, ahead of new reads.
                    self.replay.extend(self.delayed.take_due());
                    self.release_held();
                }
                batch = read => {
                    self.rewind = false;
                    match batch {
                        Ok(_) if !self.served() => {}
                        Ok(batch) => {
                            // Acks are this task's own: one look at the cursor
                            // serves the whole batch.
                            let acked = self.ledger.cursor(&self.cursor);
                            let (messages, bytes) = batch.entries.iter().fold((0u64, 0u64), |(m, b), e| {
                                (m + u64::from(e.meta.count), b + e.payload.len() as u64)
                            });
                            self.ledger.stats().delivered(messages, bytes);
                            let stable = self.converters.stable_end(self.ledger.name(), self.ledger.range().end);
                            for entry in batch.entries {
                                if entry.meta.base_offset >= stable || !self.held.is_empty() {
                                    self.held.insert(entry.meta.base_offset);
                                    continue;
                                }
                                self.dispatch(entry, acked.as_ref()).await;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(topic = %self.ledger.name(), subscription = %self.cursor, error = %e, "subscription read failed");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }
        }
    }

    fn served(&self) -> bool {
        self.served.as_ref().is_none_or(|f| f())
    }

    /// The held entries now before the stable end go to the replay queue.
    fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let stable = self.converters.stable_end(self.ledger.name(), self.ledger.range().end);
        while let Some(first) = self.held.first().copied().filter(|b| *b < stable) {
            self.held.remove(&first);
            self.replay.insert(first);
        }
    }

    /// Closes every consumer (CLOSE_CONSUMER): clients subscribe again.
    async fn close_consumers(&mut self) {
        for c in std::mem::take(&mut self.consumers) {
            let close = frame::cmd(Type::CloseConsumer, |b| {
                b.close_consumer = Some(CommandCloseConsumer { consumer_id: c.consumer_id, request_id: 0 });
            });
            let _ = c.out.send(frame::command(&close)).await;
        }
    }

    fn has_permits(&self) -> bool {
        match self.sub_type {
            SubType::Exclusive | SubType::Failover => self.active().is_some_and(|c| c.permits > 0),
            SubType::Shared | SubType::KeyShared => self.consumers.iter().any(|c| c.permits > 0),
        }
    }

    fn permit_total(&self) -> i64 {
        self.consumers.iter().map(|c| c.permits.max(0)).sum()
    }

    /// Failover and Exclusive: the consumer that receives.
    fn active(&self) -> Option<&ConsumerLink> {
        self.consumers.iter().min_by_key(|c| c.priority)
    }

    /// Returns false when the subscription ends.
    async fn handle(&mut self, command: SubCommand) -> bool {
        match command {
            SubCommand::Add(link, reply) => {
                if self.consumers.is_empty() {
                    // With nobody attached the type may change, as in Pulsar.
                    self.sub_type = link.sub_type;
                    if matches!(self.sub_type, SubType::Exclusive | SubType::Failover) {
                        // Those types get delayed messages at once.
                        self.replay.extend(self.delayed.take_all());
                    }
                }
                if link.sub_type != self.sub_type {
                    let _ = reply.send(Err((
                        ServerError::ConsumerBusy,
                        format!("subscription {} is of type {:?}, not {:?}", self.cursor, self.sub_type, link.sub_type),
                    )));
                } else if self.sub_type == SubType::Exclusive && !self.consumers.is_empty() {
                    let message = format!("Exclusive consumer is already connected to {}", self.cursor);
                    let _ = reply.send(Err((ServerError::ConsumerBusy, message)));
                } else if let Err(e) = sticky_ranges_fit(&self.consumers, &link) {
                    let _ = reply.send(Err((ServerError::ConsumerAssignError, format!("{}: {e}", self.cursor))));
                } else {
                    self.consumers.push(link);
                    // A consumer taking new key slots may take parked entries.
                    self.replay.append(&mut self.parked);
                    let _ = reply.send(Ok(()));
                }
            }
            SubCommand::Remove(key) => {
                self.remove(key);
                if self.consumers.is_empty() && !self.durable {
                    let _ = self.ledger.delete_cursor(&self.cursor).await;
                    return false;
                }
            }
            SubCommand::Flow(key, permits) => {
                if let Some(c) = self.consumers.iter_mut().find(|c| c.key == key) {
                    c.permits += i64::from(permits);
                    self.replay.append(&mut self.parked);
                }
            }
            SubCommand::Ack(_, ack_type, ids, reply) => {
                let result = self.ack(ack_type, &ids).await;
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                } else if let Err(e) = result {
                    tracing::debug!(subscription = %self.cursor, error = %e, "acknowledgement ignored");
                }
            }
            SubCommand::Redeliver(key, ids) => self.redeliver(key, &ids).await,
            SubCommand::Seek(target, reply) => {
                let result = self.seek(target).await;
                if result.is_ok() {
                    // As Pulsar: consumers are closed and resubscribe from the new position.
                    self.close_consumers().await;
                }
                let _ = reply.send(result);
            }
            SubCommand::Unsubscribe(key, reply) => {
                if self.consumers.iter().any(|c| c.key != key) {
                    let _ = reply.send(Err("other consumers are connected to the subscription".into()));
                    return true;
                }
                let result = self.ledger.delete_cursor(&self.cursor).await.map_err(|e| e.to_string());
                let done = result.is_ok();
                let _ = reply.send(result);
                return !done;
            }
            SubCommand::LastMessageId(reply) => {
                let _ = reply.send(self.last_message_id().await);
            }
            SubCommand::Stats(reply) => {
                let consumers = self
                    .consumers
                    .iter()
                    .map(|c| ConsumerSnapshot {
                        consumer_id: c.consumer_id,
                        connection: c.key.connection,
                        permits: c.permits,
                        unacked: self
                            .outstanding
                            .values()
                            .filter(|o| o.consumer == c.key)
                            .map(|o| u64::from(o.count))
                            .sum(),
                        priority: c.priority,
                    })
                    .collect();
                let _ = reply.send(SubscriptionSnapshot { sub_type: self.sub_type, durable: self.durable, consumers });
            }
            SubCommand::Delete(force, reply) => {
                if !self.consumers.is_empty() && !force {
                    let _ = reply.send(Err(DeleteRefused::Busy));
                    return true;
                }
                self.close_consumers().await;
                let result =
                    self.ledger.delete_cursor(&self.cursor).await.map_err(|e| DeleteRefused::Failed(e.to_string()));
                let done = result.is_ok();
                let _ = reply.send(result);
                return !done;
            }
        }
        true
    }

    fn remove(&mut self, key: ConsumerKey) {
        self.consumers.retain(|c| c.key != key);
        // Keys move to the consumers that remain.
        self.replay.append(&mut self.parked);
        // What it had not acknowledged goes to the others.
        let mine: Vec<u64> = self.outstanding.iter().filter(|(_, o)| o.consumer == key).map(|(k, _)| *k).collect();
        for base in mine {
            self.outstanding.remove(&base);
            self.replay.insert(base);
        }
    }

    /// The base offset and message count of the entry holding `id`.
    async fn entry_of(&self, id: &MessageIdData) -> Result<(u64, u32), String> {
        let position = Position { ledger_id: id.ledger_id, entry_id: id.entry_id, batch_index: 0 };
        let base = self.ledger.nonblocking(move |l| l.offset_of(position)).await.map_err(|e| e.to_string())?;
        if let Some(o) = self.outstanding.get(&base) {
            return Ok((base, o.count));
        }
        let entry = self.entry_at(base).await?.ok_or_else(|| format!("no entry at {base}"))?;
        Ok((entry.meta.base_offset, entry.meta.count))
    }

    /// The entry holding `offset`, read without blocking the runtime.
    async fn entry_at(&self, offset: u64) -> Result<Option<Entry>, String> {
        let one = ReadLimits { max_entries: 1, max_bytes: 1 };
        let batch = self.ledger.read(offset, one, None).await.map_err(|e| e.to_string())?;
        Ok(batch.entries.into_iter().next())
    }

    /// Applies acknowledgements; a bad id is skipped (and reported), the
    /// others still count.
    async fn ack(&mut self, ack_type: AckType, ids: &[MessageIdData]) -> Result<(), String> {
        if ack_type == AckType::Cumulative && matches!(self.sub_type, SubType::Shared | SubType::KeyShared) {
            return Err("cumulative acknowledgement is not allowed on a Shared or Key_Shared subscription".into());
        }
        let mut errors = Vec::new();
        let mut last = None;
        for id in ids {
            let (base, count) = match self.entry_of(id).await {
                Ok(span) => span,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let batch_index = id.batch_index.unwrap_or(-1);
            if batch_index >= 0 && batch_index as u64 >= u64::from(count) {
                errors.push(format!("batch index {batch_index} of an entry of {count} messages"));
                continue;
            }
            let mut acks = Vec::new();
            if !id.ack_set.is_empty() {
                // Batch-index acknowledgement: the set bits of ack_set (a
                // Java BitSet, 64 bits a word) are the messages still unacked.
                // Bits past the set's words are clear (acked): the walk is
                // bounded by the words the client sent, not by the entry's count.
                let unacked = |i: u64| id.ack_set.get(i as usize / 64).is_some_and(|w| (*w >> (i % 64)) & 1 == 1);
                let mut acked: Vec<(u64, u64)> = Vec::new();
                for i in 0..u64::from(count).min(id.ack_set.len() as u64 * 64) {
                    if !unacked(i) {
                        match acked.last_mut() {
                            Some(last) if last.1 == base + i => last.1 += 1,
                            _ => acked.push((base + i, base + i + 1)),
                        }
                    }
                }
                let walked = id.ack_set.len() as u64 * 64;
                if walked < u64::from(count) {
                    match acked.last_mut() {
                        Some(last) if last.1 == base + walked => last.1 = base + u64::from(count),
                        _ => acked.push((base + walked, base + u64::from(count))),
                    }
                }
                if ack_type == AckType::Cumulative {
                    acks.push(Ack::Cumulative(base));
                }
                if !acked.is_empty() {
                    acks.push(Ack::Individual(acked));
                }
            } else {
                acks.push(match (ack_type, batch_index) {
                    (AckType::Cumulative, i) if i >= 0 => Ack::Cumulative(base + i as u64 + 1),
                    (AckType::Cumulative, _) => Ack::Cumulative(base + u64::from(count)),
                    (AckType::Individual, i) if i >= 0 => Ack::Individual(vec![(base + i as u64, base + i as u64 + 1)]),
                    (AckType::Individual, _) => Ack::Individual(vec![(base, base + u64::from(count))]),
                });
            }
            for ack in &acks {
                match self.ledger.acknowledge(&self.cursor, ack) {
                    Ok(info) => last = Some(info),
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
        // Forget what is acknowledged now: the cursor's last state covers
        // every ack before it.
        if let Some(info) = last {
            self.outstanding.retain(|b, o| !info.covers(*b, *b + u64::from(o.count)));
            self.redeliveries.retain(|b, _| *b >= info.mark_delete);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    async fn redeliver(&mut self, key: ConsumerKey, ids: &[MessageIdData]) {
        match self.sub_type {
            SubType::Exclusive | SubType::Failover => {
                for base in self.outstanding.keys() {
                    *self.redeliveries.entry(*base).or_default() += 1;
                }
                self.outstanding.clear();
                self.replay.clear();
                self.held.clear();
                self.rewind = true;
            }
            SubType::Shared | SubType::KeyShared => {
                let bases: Vec<u64> = if ids.is_empty() {
                    self.outstanding.iter().filter(|(_, o)| o.consumer == key).map(|(b, _)| *b).collect()
                } else {
                    let mut bases = Vec::new();
                    for id in ids {
                        if let Ok((base, _)) = self.entry_of(id).await {
                            bases.push(base);
                        }
                    }
                    bases
                };
                for base in bases {
                    if self.outstanding.remove(&base).is_some() {
                        *self.redeliveries.entry(base).or_default() += 1;
                        self.replay.insert(base);
                    }
                }
            }
        }
    }

    async fn seek(&mut self, target: SeekTarget) -> Result<(), String> {
        let range = self.ledger.range();
        let offset = match target {
            SeekTarget::MessageId(id) if is_earliest(&id) => range.start,
            SeekTarget::MessageId(id) if is_latest(&id) => range.end,
            SeekTarget::MessageId(id) => {
                let (base, count) = self.entry_of(&id).await?;
                let index = u32::try_from(id.batch_index.unwrap_or(-1).max(0)).unwrap_or(0);
                base + u64::from(index.min(count.saturating_sub(1)))
            }
            SeekTarget::PublishTime(ms) => {
                match self.ledger.nonblocking(move |l| l.find_by_time(ms as i64)).await.map_err(|e| e.to_string())? {
                    Some(entry) => entry.meta.base_offset,
                    None => range.end,
                }
            }
            SeekTarget::Offset(offset) => offset.clamp(range.start, range.end),
        };
        self.ledger.seek_cursor(&self.cursor, offset).map_err(|e| e.to_string())?;
        self.delayed.clear();
        self.outstanding.clear();
        self.replay.clear();
        self.held.clear();
        self.redeliveries.clear();
        self.rewind = true;
        Ok(())
    }

    async fn last_message_id(&self) -> Result<(MessageIdData, MessageIdData), String> {
        let range = self.ledger.range();
        let mark_delete = self.ledger.cursor(&self.cursor).map_or(range.start, |c| c.mark_delete);
        let earliest = MessageIdData { ledger_id: u64::MAX, entry_id: u64::MAX, ..message_id(0, 0, -1) };
        let last = if range.end > range.start { self.message_id_at(range.end - 1).await? } else { earliest.clone() };
        let mark = if mark_delete > range.start { self.message_id_at(mark_delete - 1).await? } else { earliest };
        Ok((last, mark))
    }

    /// The message id of the message at `offset`.
    async fn message_id_at(&self, offset: u64) -> Result<MessageIdData, String> {
        let p = self.ledger.nonblocking(move |l| l.position(offset)).await.map_err(|e| e.to_string())?;
        let entry = self.entry_at(offset).await?;
        // A message sent alone (not in a batch) has no batch index.
        let batched = entry
            .as_ref()
            .filter(|e| e.meta.format == FORMAT_PULSAR)
            .and_then(|e| frame::split_section(&e.payload))
            .is_none_or(|(m, _)| m.num_messages_in_batch.is_some());
        Ok(message_id(p.ledger_id, p.entry_id, if batched { p.batch_index as i32 } else { -1 }))
    }

    async fn dispatch_replay(&mut self) {
        let bases: Vec<u64> = std::mem::take(&mut self.replay).into_iter().collect();
        let acked = self.ledger.cursor(&self.cursor);
        for base in bases {
            match self.entry_at(base).await {
                Ok(entry) => {
                    if let Some(entry) = entry {
                        self.dispatch(entry, acked.as_ref()).await;
                    }
                }
                Err(e) => tracing::debug!(subscription = %self.cursor, offset = base, error = %e, "replay skipped"),
            }
        }
    }

    /// The entry as a Pulsar consumer gets it: as stored if a Pulsar
    /// producer wrote it, else converted (on this read only); `None` when it
    /// cannot be converted (said once per format; the consumer sees the next
    /// deliverable message).
    async fn pulsar_form(&mut self, entry: &Entry) -> Option<Bytes> {
        if entry.meta.format == FORMAT_PULSAR {
            return Some(entry.payload.clone());
        }
        let base = entry.meta.base_offset;
        let (converters, format, raw) = (Arc::clone(&self.converters), entry.meta.format, entry.payload.clone());
        let inline = converters.converts_inline(format, &raw);
        let convert =
            move || converters.decode(format, &raw).map(|messages| super::convert::from_messages(&messages, base));
        let converted = if inline {
            // Small and uncompressed: here, cheaper than the trip below.
            convert()
        } else {
            // On a blocking thread: decoding may decompress up to 256 MiB.
            tokio::task::spawn_blocking(convert).await.unwrap_or_else(|e| {
                Err(polyport_handler_api::HandlerError::new(polyport_handler_api::ErrorKind::PANICKED, e.to_string()))
            })
        };
        match converted {
            Ok(payload) => Some(payload.into()),
            Err(e) => {
                if self.skipped_formats.insert(entry.meta.format) {
                    tracing::warn!(topic = %self.ledger.name(), subscription = %self.cursor,
                        format = entry.meta.format, offset = base, error = %e,
                        "entry not converted for a Pulsar consumer; skipped");
                }
                None
            }
        }
    }

    /// Hands one entry to a consumer, unless `acked` (the cursor) covers it.
    async fn dispatch(&mut self, entry: polyport_ledger::Entry, acked: Option<&polyport_ledger::CursorInfo>) {
        let base = entry.meta.base_offset;
        let end = entry.meta.next_offset();
        if acked.is_some_and(|info| info.covers(base, end)) {
            return;
        }
        // A handler's fence hides it from every reader (Kafka's aborted
        // transactions and markers): acknowledged here, so the cursor moves on.
        if self.converters.hidden(self.ledger.name(), entry.meta.format, base, &entry.payload) {
            if let Err(e) = self.ledger.acknowledge(&self.cursor, &Ack::Individual(vec![(base, end)])) {
                tracing::warn!(subscription = %self.cursor, offset = base, error = %e, "hidden entry not acknowledged");
            }
            return;
        }
        let Some(payload) = self.pulsar_form(&entry).await else { return };
        // The metadata, parsed once, for what needs it: the delivery time
        // (Shared and Key_Shared) and the key (Key_Shared).
        let delays = self.delayed_enabled && matches!(self.sub_type, SubType::Shared | SubType::KeyShared);
        let section = (delays || self.sub_type == SubType::KeyShared).then(|| frame::split_section(&payload)).flatten();
        if delays {
            // Exclusive and Failover subscriptions get delayed messages at
            // once, as in Pulsar (delay is for work queues).
            let at = section.as_ref().and_then(|(m, _)| m.deliver_at_time);
            if let Some(at) = at.filter(|at| *at > super::delayed::now_ms()) {
                self.delayed.hold(at, base);
                return;
            }
        }
        let Some(index) = self.pick(section) else {
            if self.consumers.is_empty() {
                // No consumer (it left meanwhile): keep it for the next one.
                self.replay.insert(base);
            } else {
                // Key_Shared: its key's consumer has no permits, or (Sticky)
                // no consumer takes its key's slot.
                self.parked.insert(base);
            }
            return;
        };
        let redelivery_count = self.redeliveries.get(&base).copied().unwrap_or(0);
        let ack_set = acked.map(|info| unacked_set(info, base, end)).unwrap_or_default();
        let consumer = &mut self.consumers[index];
        let command = frame::cmd(Type::Message, |b| {
            b.message = Some(CommandMessage {
                consumer_id: consumer.consumer_id,
                message_id: message_id(entry.ledger_id, entry.entry_id, -1),
                redelivery_count: Some(redelivery_count),
                ack_set,
                ..Default::default()
            });
        });
        consumer.permits -= i64::from(entry.meta.count);
        let key = consumer.key;
        let out = consumer.out.clone();
        self.outstanding.insert(base, Outstanding { consumer: key, count: entry.meta.count });
        // Never wait on one consumer's connection: a stalled client must not
        // stall the subscription's other consumers.
        // A Pulsar producer's entry is the message section as sent: its
        // stored checksum is the frame's. A converted one is checksummed here.
        let message = if entry.meta.format == FORMAT_PULSAR {
            frame::with_checked_message(&command, &payload, entry.payload_crc)
        } else {
            frame::with_message(&command, &payload)
        };
        match out.try_send(message) {
            Ok(()) => {}
            Err(NotQueued::Full) => {
                self.outstanding.remove(&base);
                self.replay.insert(base);
                // Nothing more for it until it asks again (FLOW).
                if let Some(c) = self.consumers.iter_mut().find(|c| c.key == key) {
                    c.permits = 0;
                }
            }
            Err(NotQueued::Closed) => {
                // The connection is gone; its Remove is on the way.
                self.outstanding.remove(&base);
                self.replay.insert(base);
            }
        }
    }

    /// The consumer for an entry; `section` is its metadata and payload,
    /// which Key_Shared routes by.
    fn pick(&mut self, section: Option<(crate::pulsar::proto::MessageMetadata, Bytes)>) -> Option<usize> {
        if self.consumers.is_empty() {
            return None;
        }
        match self.sub_type {
            SubType::Exclusive | SubType::Failover => {
                let best = self.consumers.iter().map(|c| c.priority).min()?;
                self.consumers.iter().position(|c| c.priority == best)
            }
            SubType::KeyShared => {
                // A batch goes whole to the consumer of its first message's key
                // (Pulsar producers batch by key for Key_Shared).
                let key = section
                    .and_then(|(m, body)| {
                        m.ordering_key.or_else(|| m.partition_key.map(String::into_bytes)).or_else(|| first_key(&body))
                    })
                    .unwrap_or_default();
                let index = if self.consumers.iter().any(|c| !c.hash_ranges.is_empty()) {
                    let slot = sticky_slot(&key);
                    self.consumers.iter().position(|c| c.hash_ranges.iter().any(|(s, e)| *s <= slot && slot <= *e))?
                } else {
                    (crc32c::crc32c(&key) as usize) % self.consumers.len()
                };
                // Not to a consumer without permits (one that has not sent
                // FLOW yet may not even know it is subscribed): the entry
                // waits for them, and the key's order with it.
                (self.consumers[index].permits > 0).then_some(index)
            }
            SubType::Shared => {
                let n = self.consumers.len();
                for i in 0..n {
                    let index = (self.next + i) % n;
                    if self.consumers[index].permits > 0 {
                        self.next = index + 1;
                        return Some(index);
                    }
                }
                None
            }
        }
    }
}

/// The members of the batch `[base, end)` not yet acknowledged, as Pulsar
/// sends them in a MESSAGE's `ack_set` (a Java `BitSet`'s words: bit `i`
/// set while message `i` is unacknowledged), so that the client hands the
/// application only those. Empty when nothing in the batch is acknowledged
/// (the client then delivers every member).
fn unacked_set(info: &polyport_ledger::CursorInfo, base: u64, end: u64) -> Vec<i64> {
    let overlapping = info.acked_ranges.iter().filter(|(s, e)| *s < end && base < *e);
    if end - base < 2 || (info.mark_delete <= base && overlapping.clone().next().is_none()) {
        return Vec::new();
    }
    let count = end - base;
    let mut words = vec![-1i64; count.div_ceil(64) as usize];
    if count % 64 != 0 {
        // Bits past the batch's last member are clear, as in a BitSet.
        if let Some(last) = words.last_mut() {
            *last = (1i64 << (count % 64)) - 1;
        }
    }
    let below_mark = (base, info.mark_delete.min(end));
    for (s, e) in std::iter::once(&below_mark).chain(overlapping) {
        for i in (*s).max(base)..(*e).min(end) {
            let i = i - base;
            words[(i / 64) as usize] &= !(1i64 << (i % 64));
        }
    }
    words
}

/// Slots of the Key_Shared hash space, as in Pulsar.
pub const KEY_SLOTS: u32 = 65_536;

/// The slot of `key` among [`KEY_SLOTS`]: Murmur3 (x86, 32-bit, seed 0) of
/// the key, its sign bit cleared, modulo the slots, as Pulsar computes it,
/// so that ranges a consumer chooses take the keys they take on Pulsar.
fn sticky_slot(key: &[u8]) -> u32 {
    let hash = murmur3::murmur3_32(&mut std::io::Cursor::new(key), 0).unwrap_or(0);
    (hash & 0x7fff_ffff) % KEY_SLOTS
}

/// Whether `link` may join `consumers`: Key_Shared consumers of one
/// subscription are all Sticky or all not, and Sticky ranges are within
/// the slots and overlap no other consumer's.
fn sticky_ranges_fit(consumers: &[ConsumerLink], link: &ConsumerLink) -> Result<(), String> {
    if link.sub_type != SubType::KeyShared {
        return Ok(());
    }
    let sticky = !link.hash_ranges.is_empty();
    if consumers.iter().any(|c| c.hash_ranges.is_empty() == sticky) {
        let (mine, theirs) = if sticky { ("Sticky", "AutoSplit") } else { ("AutoSplit", "Sticky") };
        return Err(format!("a {mine} Key_Shared consumer cannot join {theirs} ones"));
    }
    for (s, e) in &link.hash_ranges {
        if s > e || *e >= KEY_SLOTS {
            return Err(format!("hash range [{s}, {e}] is not within [0, {}]", KEY_SLOTS - 1));
        }
        for other in consumers.iter().flat_map(|c| c.hash_ranges.iter()) {
            if s <= &other.1 && &other.0 <= e {
                return Err(format!("hash range [{s}, {e}] overlaps a consumer's [{}, {}]", other.0, other.1));
            }
        }
    }
    Ok(())
}

/// The key of the first message of an uncompressed batch body.
fn first_key(body: &Bytes) -> Option<Vec<u8>> {
    let (single, _) = frame::split_sized::<crate::pulsar::proto::SingleMessageMetadata>(body)?;
    single.ordering_key.or_else(|| single.partition_key.map(String::into_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(mark_delete: u64, acked_ranges: Vec<(u64, u64)>) -> polyport_ledger::CursorInfo {
        polyport_ledger::CursorInfo {
            name: "s".into(),
            durable: true,
            mark_delete,
            acked_ranges,
            backlog_entries: 0,
            backlog_messages: 0,
        }
    }

    fn sticky(ranges: Vec<(u32, u32)>) -> ConsumerLink {
        let (out, _rx) = Outbox::new(1 << 20);
        ConsumerLink {
            key: ConsumerKey { connection: 0, consumer: 0 },
            consumer_id: 0,
            priority: 0,
            sub_type: SubType::KeyShared,
            out,
            permits: 0,
            hash_ranges: ranges,
        }
    }

    #[test]
    fn sticky_key_slots_are_pulsars_and_ranges_may_not_overlap() {
        // Murmur3 x86 32-bit of "hello", seed 0, is 0x248bfa47.
        assert_eq!(sticky_slot(b"hello"), 0x248b_fa47 % KEY_SLOTS);
        let first = vec![sticky(vec![(0, 30_000)])];
        assert!(sticky_ranges_fit(&first, &sticky(vec![(30_001, 65_535)])).is_ok());
        let e = sticky_ranges_fit(&first, &sticky(vec![(30_000, 40_000)])).expect_err("overlap");
        assert!(e.contains("overlaps a consumer's [0, 30000]"), "{e}");
        assert!(sticky_ranges_fit(&[], &sticky(vec![(0, 65_536)])).is_err(), "past the slots");
        assert!(sticky_ranges_fit(&first, &sticky(vec![])).expect_err("mixed").contains("AutoSplit"));
    }

    #[test]
    fn the_ack_set_marks_the_members_still_unacknowledged() {
        // Nothing acknowledged in the batch: no set (the client delivers all).
        assert!(unacked_set(&info(10, vec![(30, 32)]), 10, 15).is_empty());
        // Messages 0 and 1 of 5 acknowledged: bits 2, 3, 4.
        assert_eq!(unacked_set(&info(10, vec![(10, 12)]), 10, 15), vec![0b11100]);
        assert_eq!(unacked_set(&info(12, vec![]), 10, 15), vec![0b11100], "by the mark-delete");
        assert_eq!(unacked_set(&info(10, vec![(11, 12), (13, 14)]), 10, 15), vec![0b10101]);
        // Past one word.
        let words = unacked_set(&info(0, vec![(64, 65)]), 0, 70);
        assert_eq!(words, vec![-1, 0b111110]);
        // A single message has no set.
        assert!(unacked_set(&info(0, vec![(0, 1)]), 0, 1).is_empty());
    }
}
