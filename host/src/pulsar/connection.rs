//! One Pulsar client connection: frames in, commands answered, messages out.
//!
//! A reader decodes frames and answers each command; everything the broker
//! sends (answers, receipts, dispatched messages) goes through one bounded
//! channel to a writer, so a slow client slows its own subscriptions and
//! nothing else. Producers append through a task each, which takes every
//! SEND queued meanwhile into one ledger append (one fsync for the burst) and
//! answers the receipts in order. Consumers are links into their
//! subscription's task ([`super::subscription`]).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use polyport_ledger::{ManagedLedger, NewEntry};
use pulsar::message::proto::{
    base_command::Type, command_lookup_topic_response::LookupType,
    command_partitioned_topic_metadata_response::LookupType as MetadataLookupType, BaseCommand, CommandAckResponse,
    CommandConnected, CommandError, CommandGetLastMessageIdResponse, CommandGetTopicsOfNamespaceResponse,
    CommandLookupTopicResponse, CommandPartitionedTopicMetadataResponse, CommandPing, CommandPong,
    CommandProducerSuccess, CommandSendError, CommandSendReceipt, CommandSuccess, ServerError,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter},
    sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore},
};

use super::{
    frame::{self, cmd, Frame, FrameError, MessageSection},
    outbox::Outbox,
    subscription::{message_id, ConsumerLink, SeekTarget, SubCommand},
    PulsarService, FORMAT_PULSAR,
};
use crate::topics::{TopicError, TopicName};

/// The protocol version this broker speaks (the bundled proto's newest).
const PROTOCOL_VERSION: i32 = 19;
/// SENDs queued for one producer's append task.
const SEND_QUEUE: usize = 1024;
/// Pulsar's default keepalive interval.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(30);

/// A SEND waiting for its append, holding its share of the connection's
/// budget of pending bytes until it is answered.
struct QueuedSend {
    sequence_id: u64,
    highest_sequence_id: u64,
    count: u32,
    section: MessageSection,
    _pending: OwnedSemaphorePermit,
}

struct Consumer {
    subscription: mpsc::Sender<SubCommand>,
}

/// The state of one connection.
pub struct Connection {
    service: Arc<PulsarService>,
    id: u64,
    out: Outbox,
    producers: HashMap<u64, mpsc::Sender<QueuedSend>>,
    consumers: HashMap<u64, Consumer>,
    /// Bytes of SENDs received and not yet answered (`maxPendingBytesPerConnection`).
    pending_sends: Arc<Semaphore>,
    connected: bool,
}

fn error(request_id: u64, error: ServerError, message: impl Into<String>) -> BaseCommand {
    cmd(Type::Error, |c| c.error = Some(CommandError { request_id, error: error as i32, message: message.into() }))
}

fn success(request_id: u64) -> BaseCommand {
    cmd(Type::Success, |c| c.success = Some(CommandSuccess { request_id, schema: None }))
}

fn topic_error(e: &TopicError) -> ServerError {
    match e {
        TopicError::NotFound(_) | TopicError::NamespaceNotFound(_) => ServerError::TopicNotFound,
        TopicError::InvalidName(_) | TopicError::Invalid(_) => ServerError::InvalidTopicName,
        TopicError::Metadata(_) => ServerError::MetadataError,
        _ => ServerError::PersistenceError,
    }
}

/// Serves one connection until the client closes it or a frame is malformed.
pub async fn serve<S>(service: Arc<PulsarService>, id: u64, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read_half, write_half) = tokio::io::split(stream);
    let pending_bytes = service.limits.max_pending_bytes_per_connection;
    let (out, mut outgoing) = Outbox::new(pending_bytes);
    let writer = tokio::spawn(async move {
        let mut w = BufWriter::with_capacity(64 * 1024, write_half);
        while let Some(queued) = outgoing.recv().await {
            if w.write_all(&queued.frame).await.is_err() {
                return;
            }
            // Write what is queued in one go, then flush.
            while let Ok(queued) = outgoing.try_recv() {
                if w.write_all(&queued.frame).await.is_err() {
                    return;
                }
            }
            if w.flush().await.is_err() {
                return;
            }
        }
    });
    // Pulsar's keepalive: a connection silent for an interval gets a PING; one
    // still silent an interval later is closed (a dead peer that is never
    // written to would otherwise hold its subscriptions forever).
    let origin = std::time::Instant::now();
    let last_frame = Arc::new(AtomicU64::new(0));
    let dead = Arc::new(Notify::new());
    let keepalive = {
        let (out, last_frame, dead) = (out.clone(), Arc::clone(&last_frame), Arc::clone(&dead));
        tokio::spawn(async move {
            let mut pinged = false;
            loop {
                tokio::time::sleep(KEEPALIVE).await;
                let idle = (origin.elapsed().as_millis() as u64).saturating_sub(last_frame.load(Ordering::Relaxed));
                if idle < KEEPALIVE.as_millis() as u64 {
                    pinged = false;
                } else if pinged {
                    dead.notify_one();
                    return;
                } else {
                    let ping = cmd(Type::Ping, |c| c.ping = Some(CommandPing {}));
                    if out.send(frame::command(&ping)).await.is_err() {
                        return;
                    }
                    pinged = true;
                }
            }
        })
    };
    let limit = service.max_message_size + frame::FRAME_PADDING;
    // At least one SEND of the largest size fits.
    let pending_sends = Arc::new(Semaphore::new(pending_bytes.max(limit).min(Semaphore::MAX_PERMITS)));
    let mut conn = Connection {
        service,
        id,
        out,
        producers: HashMap::new(),
        consumers: HashMap::new(),
        pending_sends,
        connected: false,
    };
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    loop {
        let read = tokio::select! {
            read = frame::read(&mut reader, limit) => read,
            () = dead.notified() => {
                tracing::info!("no frame and no PONG for two keepalive intervals: closing");
                break;
            }
        };
        match read {
            Ok(Some(frame)) => {
                last_frame.store(origin.elapsed().as_millis() as u64, Ordering::Relaxed);
                if !conn.handle(frame).await {
                    break;
                }
            }
            Ok(None) => break,
            Err(FrameError::Io(e)) => {
                tracing::debug!(error = %e, "connection read ended");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "closing the connection");
                break;
            }
        }
    }
    keepalive.abort();
    conn.close().await;
    drop(conn);
    let _ = writer.await;
}

impl Connection {
    async fn send(&self, command: BaseCommand) {
        let _ = self.out.send(frame::command(&command)).await;
    }

    /// Sends a request to consumer `consumer_id`'s subscription and waits
    /// for its answer.
    async fn ask<T>(
        &self,
        consumer_id: u64,
        request: impl FnOnce(oneshot::Sender<Result<T, String>>) -> SubCommand,
    ) -> Result<T, String> {
        let c = self.consumers.get(&consumer_id).ok_or_else(|| format!("no consumer {consumer_id}"))?;
        let (tx, rx) = oneshot::channel();
        c.subscription.send(request(tx)).await.map_err(|_| "subscription closed".to_owned())?;
        rx.await.unwrap_or_else(|_| Err("subscription closed".into()))
    }

    async fn close(&mut self) {
        for (consumer_id, consumer) in self.consumers.drain() {
            let _ = consumer.subscription.send(SubCommand::Remove((self.id, consumer_id))).await;
        }
        self.producers.clear();
    }

    /// Answers one frame; false ends the connection.
    async fn handle(&mut self, frame: Frame) -> bool {
        let Frame { command, message } = frame;
        let kind = Type::try_from(command.r#type).ok();
        if !self.connected && kind != Some(Type::Connect) {
            tracing::warn!(command = command.r#type, "command before CONNECT: closing");
            return false;
        }
        match kind {
            Some(Type::Connect) => {
                let Some(connect) = command.connect else { return false };
                let version = connect.protocol_version.unwrap_or(0).min(PROTOCOL_VERSION);
                tracing::debug!(client = %connect.client_version, version, "CONNECT");
                self.connected = true;
                let connected = cmd(Type::Connected, |c| {
                    c.connected = Some(CommandConnected {
                        server_version: format!("Polyport {}", env!("CARGO_PKG_VERSION")),
                        protocol_version: Some(version),
                        max_message_size: Some(self.service.max_message_size as i32),
                    })
                });
                self.send(connected).await;
            }
            Some(Type::Ping) => self.send(cmd(Type::Pong, |c| c.pong = Some(CommandPong {}))).await,
            Some(Type::Pong) => {}
            Some(Type::PartitionedMetadata) => {
                let Some(m) = command.partition_metadata else { return false };
                let result = match TopicName::parse(&m.topic) {
                    Ok(name) => {
                        self.service.topics.partitions(&name, true).await.map_err(|e| (topic_error(&e), e.to_string()))
                    }
                    Err(e) => Err((ServerError::InvalidTopicName, e.to_string())),
                };
                let response = match result {
                    Ok(partitions) => CommandPartitionedTopicMetadataResponse {
                        partitions: Some(partitions),
                        request_id: m.request_id,
                        response: Some(MetadataLookupType::Success as i32),
                        ..Default::default()
                    },
                    Err((error, message)) => CommandPartitionedTopicMetadataResponse {
                        request_id: m.request_id,
                        response: Some(MetadataLookupType::Failed as i32),
                        error: Some(error as i32),
                        message: Some(message),
                        ..Default::default()
                    },
                };
                self.send(cmd(Type::PartitionedMetadataResponse, |c| c.partition_metadata_response = Some(response)))
                    .await;
            }
            Some(Type::Lookup) => {
                let Some(l) = command.lookup_topic else { return false };
                let response = match TopicName::parse(&l.topic) {
                    // One broker: it is authoritative for every topic.
                    Ok(_) => CommandLookupTopicResponse {
                        broker_service_url: Some(self.service.service_url.clone()),
                        response: Some(LookupType::Connect as i32),
                        request_id: l.request_id,
                        authoritative: Some(true),
                        proxy_through_service_url: Some(false),
                        ..Default::default()
                    },
                    Err(e) => CommandLookupTopicResponse {
                        response: Some(LookupType::Failed as i32),
                        request_id: l.request_id,
                        error: Some(ServerError::InvalidTopicName as i32),
                        message: Some(e.to_string()),
                        ..Default::default()
                    },
                };
                self.send(cmd(Type::LookupResponse, |c| c.lookup_topic_response = Some(response))).await;
            }
            Some(Type::Producer) => {
                let Some(p) = command.producer else { return false };
                let most = self.service.limits.max_producers_per_connection;
                if !self.producers.contains_key(&p.producer_id) && self.producers.len() >= most {
                    let message = format!("this connection has {most} producers (maxProducersPerConnection)");
                    tracing::info!(topic = %p.topic, "{message}: producer refused");
                    self.send(error(p.request_id, ServerError::NotAllowedError, message)).await;
                    return true;
                }
                match self.open_ledger(&p.topic).await {
                    Ok(ledger) => {
                        let name =
                            p.producer_name.filter(|n| !n.is_empty()).unwrap_or_else(|| self.service.producer_name());
                        let (tx, rx) = mpsc::channel(SEND_QUEUE);
                        tokio::spawn(append_loop(ledger, p.producer_id, rx, self.out.clone()));
                        self.producers.insert(p.producer_id, tx);
                        let ok = CommandProducerSuccess {
                            request_id: p.request_id,
                            producer_name: name,
                            last_sequence_id: Some(-1),
                            producer_ready: Some(true),
                            ..Default::default()
                        };
                        self.send(cmd(Type::ProducerSuccess, |c| c.producer_success = Some(ok))).await;
                    }
                    Err((e, message)) => self.send(error(p.request_id, e, message)).await,
                }
            }
            Some(Type::Send) => {
                let Some(s) = command.send else { return false };
                let Some(section) = message else {
                    tracing::warn!("SEND without a message: closing");
                    return false;
                };
                if section.raw.len() > self.service.max_message_size {
                    let e = CommandSendError {
                        producer_id: s.producer_id,
                        sequence_id: s.sequence_id,
                        error: ServerError::NotAllowedError as i32,
                        message: format!(
                            "message of {} bytes is larger than maxMessageSize ({})",
                            section.raw.len(),
                            self.service.max_message_size
                        ),
                    };
                    self.send(cmd(Type::SendError, |c| c.send_error = Some(e))).await;
                    return true;
                }
                // The offsets the entry takes: the metadata's count, checked
                // against the bytes (and matching the command's, if it says).
                let count = super::convert::message_count(&section.metadata, section.payload_len()).and_then(|count| {
                    match s.num_messages {
                        Some(n) if n != count as i32 && section.metadata.num_messages_in_batch.is_some() => {
                            Err(format!("SEND says {n} messages, its batch {count}"))
                        }
                        _ => Ok(count),
                    }
                });
                let count = match count {
                    Ok(count) => count,
                    Err(message) => {
                        tracing::info!(producer_id = s.producer_id, sequence_id = s.sequence_id, %message, "SEND refused");
                        let e = CommandSendError {
                            producer_id: s.producer_id,
                            sequence_id: s.sequence_id,
                            error: ServerError::NotAllowedError as i32,
                            message: format!("malformed message: {message}"),
                        };
                        self.send(cmd(Type::SendError, |c| c.send_error = Some(e))).await;
                        return true;
                    }
                };
                // Waits (reading nothing more from this client) while the
                // connection's SENDs not yet stored fill its budget.
                let share = u32::try_from(section.raw.len().max(1)).unwrap_or(u32::MAX);
                let Ok(pending) = Arc::clone(&self.pending_sends).acquire_many_owned(share).await else {
                    return false;
                };
                let item = QueuedSend {
                    sequence_id: s.sequence_id,
                    highest_sequence_id: s.highest_sequence_id.unwrap_or(0),
                    count,
                    section,
                    _pending: pending,
                };
                match self.producers.get(&s.producer_id) {
                    Some(tx) => {
                        let _ = tx.send(item).await;
                    }
                    None => {
                        let e = CommandSendError {
                            producer_id: s.producer_id,
                            sequence_id: s.sequence_id,
                            error: ServerError::UnknownError as i32,
                            message: format!("no producer {} on this connection", s.producer_id),
                        };
                        self.send(cmd(Type::SendError, |c| c.send_error = Some(e))).await;
                    }
                }
            }
            Some(Type::CloseProducer) => {
                let Some(c) = command.close_producer else { return false };
                self.producers.remove(&c.producer_id);
                self.send(success(c.request_id)).await;
            }
            Some(Type::Subscribe) => {
                let Some(s) = command.subscribe else { return false };
                let request_id = s.request_id;
                let most = self.service.limits.max_consumers_per_connection;
                if !self.consumers.contains_key(&s.consumer_id) && self.consumers.len() >= most {
                    let message = format!("this connection has {most} consumers (maxConsumersPerConnection)");
                    tracing::info!(topic = %s.topic, "{message}: consumer refused");
                    self.send(error(request_id, ServerError::NotAllowedError, message)).await;
                    return true;
                }
                match self.subscribe(s).await {
                    Ok(()) => self.send(success(request_id)).await,
                    Err((e, message)) => self.send(error(request_id, e, message)).await,
                }
            }
            Some(Type::Flow) => {
                let Some(f) = command.flow else { return false };
                if let Some(c) = self.consumers.get(&f.consumer_id) {
                    let _ = c.subscription.send(SubCommand::Flow((self.id, f.consumer_id), f.message_permits)).await;
                }
            }
            Some(Type::Ack) => {
                let Some(a) = command.ack else { return false };
                let ack_type = a.ack_type();
                let key = (self.id, a.consumer_id);
                let Some(request_id) = a.request_id else {
                    if let Some(c) = self.consumers.get(&a.consumer_id) {
                        let _ = c.subscription.send(SubCommand::Ack(key, ack_type, a.message_id, None)).await;
                    }
                    return true;
                };
                // The client asked for a receipt.
                let known = self.consumers.contains_key(&a.consumer_id);
                let result = self.ask(a.consumer_id, |tx| SubCommand::Ack(key, ack_type, a.message_id, Some(tx))).await;
                let code = if known { ServerError::UnknownError } else { ServerError::ConsumerNotFound };
                let response = CommandAckResponse {
                    consumer_id: a.consumer_id,
                    request_id: Some(request_id),
                    error: result.as_ref().err().map(|_| code as i32),
                    message: result.err(),
                    ..Default::default()
                };
                self.send(cmd(Type::AckResponse, |c| c.ack_response = Some(response))).await;
            }
            Some(Type::RedeliverUnacknowledgedMessages) => {
                let Some(r) = command.redeliver_unacknowledged_messages else { return false };
                if let Some(c) = self.consumers.get(&r.consumer_id) {
                    let key = (self.id, r.consumer_id);
                    let _ = c.subscription.send(SubCommand::Redeliver(key, r.message_ids)).await;
                }
            }
            Some(Type::CloseConsumer) => {
                let Some(c) = command.close_consumer else { return false };
                if let Some(consumer) = self.consumers.remove(&c.consumer_id) {
                    let _ = consumer.subscription.send(SubCommand::Remove((self.id, c.consumer_id))).await;
                }
                self.send(success(c.request_id)).await;
            }
            Some(Type::Unsubscribe) => {
                let Some(u) = command.unsubscribe else { return false };
                let key = (self.id, u.consumer_id);
                match self.ask(u.consumer_id, |tx| SubCommand::Unsubscribe(key, tx)).await {
                    Ok(()) => {
                        self.consumers.remove(&u.consumer_id);
                        self.send(success(u.request_id)).await;
                    }
                    Err(m) => self.send(error(u.request_id, ServerError::UnknownError, m)).await,
                }
            }
            Some(Type::Seek) => {
                let Some(s) = command.seek else { return false };
                let target = match (s.message_id, s.message_publish_time) {
                    (Some(id), _) => Some(SeekTarget::MessageId(id)),
                    (None, Some(t)) => Some(SeekTarget::PublishTime(t)),
                    (None, None) => None,
                };
                let result = match target {
                    None => Err("SEEK needs a message id or a publish time".to_owned()),
                    Some(target) => self.ask(s.consumer_id, |tx| SubCommand::Seek(target, tx)).await,
                };
                match result {
                    Ok(()) => {
                        // The subscription closed its consumers (they resubscribe).
                        self.consumers.remove(&s.consumer_id);
                        self.send(success(s.request_id)).await;
                    }
                    Err(m) => self.send(error(s.request_id, ServerError::UnknownError, m)).await,
                }
            }
            Some(Type::GetLastMessageId) => {
                let Some(g) = command.get_last_message_id else { return false };
                match self.ask(g.consumer_id, SubCommand::LastMessageId).await {
                    Ok((last, mark)) => {
                        let response = CommandGetLastMessageIdResponse {
                            last_message_id: last,
                            request_id: g.request_id,
                            consumer_mark_delete_position: Some(mark),
                        };
                        self.send(cmd(Type::GetLastMessageIdResponse, |c| {
                            c.get_last_message_id_response = Some(response)
                        }))
                        .await;
                    }
                    Err(m) => self.send(error(g.request_id, ServerError::UnknownError, m)).await,
                }
            }
            Some(Type::GetTopicsOfNamespace) => {
                let Some(g) = command.get_topics_of_namespace else { return false };
                match self.service.topics.list(&g.namespace).await {
                    Ok(list) => {
                        let mut topics = Vec::new();
                        for (name, partitions) in list {
                            if partitions == 0 {
                                topics.push(name.to_string());
                            } else {
                                topics.extend((0..partitions).map(|i| name.partition_name(i).to_string()));
                            }
                        }
                        let response = CommandGetTopicsOfNamespaceResponse {
                            request_id: g.request_id,
                            topics,
                            filtered: Some(false),
                            changed: Some(true),
                            ..Default::default()
                        };
                        self.send(cmd(Type::GetTopicsOfNamespaceResponse, |c| {
                            c.get_topics_of_namespace_response = Some(response)
                        }))
                        .await;
                    }
                    Err(e) => self.send(error(g.request_id, topic_error(&e), e.to_string())).await,
                }
            }
            _ => {
                // Never silence: an error naming the command, on its request id
                // when it has one.
                let request_id = request_id_of(&command).unwrap_or(0);
                let name = kind.map_or_else(|| format!("type {}", command.r#type), |k| format!("{k:?}"));
                tracing::info!(command = %name, "unsupported Pulsar command");
                self.send(error(
                    request_id,
                    ServerError::NotAllowedError,
                    format!("{name} is not supported by this broker"),
                ))
                .await;
            }
        }
        true
    }

    /// The ledger of a topic partition (or non-partitioned topic), created per
    /// the auto-creation policy.
    async fn open_ledger(&self, topic: &str) -> Result<Arc<ManagedLedger>, (ServerError, String)> {
        let name = TopicName::parse(topic).map_err(|e| (ServerError::InvalidTopicName, e.to_string()))?;
        self.service.topics.ledger(&name, true).await.map_err(|e| (topic_error(&e), e.to_string()))
    }

    async fn subscribe(&mut self, s: pulsar::message::proto::CommandSubscribe) -> Result<(), (ServerError, String)> {
        if let Some(old) = self.consumers.remove(&s.consumer_id) {
            // The same consumer subscribing again (after the CLOSE_CONSUMER of
            // a seek, or a SUBSCRIBE retried after a timeout): it replaces
            // its old link.
            let _ = old.subscription.send(SubCommand::Remove((self.id, s.consumer_id))).await;
        }
        let ledger = self.open_ledger(&s.topic).await?;
        let sub_type = s.sub_type();
        let durable = s.durable.unwrap_or(true);
        let initial = match (&s.start_message_id, s.initial_position()) {
            (Some(id), _) => super::start_position(&ledger, id).await,
            (None, pulsar::message::proto::command_subscribe::InitialPosition::Earliest) => {
                polyport_ledger::InitialPosition::Earliest
            }
            (None, _) => polyport_ledger::InitialPosition::Latest,
        };
        let link = ConsumerLink {
            key: (self.id, s.consumer_id),
            consumer_id: s.consumer_id,
            priority: s.priority_level.unwrap_or(0),
            sub_type,
            out: self.out.clone(),
            permits: 0,
        };
        let subscription = self
            .service
            .attach(&ledger, &s.subscription, sub_type, durable, initial, link)
            .await
            .map_err(|m| (ServerError::ConsumerBusy, m))?;
        self.consumers.insert(s.consumer_id, Consumer { subscription });
        Ok(())
    }
}

fn request_id_of(c: &BaseCommand) -> Option<u64> {
    c.get_schema
        .as_ref()
        .map(|x| x.request_id)
        .or(c.get_or_create_schema.as_ref().map(|x| x.request_id))
        .or(c.consumer_stats.as_ref().map(|x| x.request_id))
        .or(c.new_txn.as_ref().map(|x| x.request_id))
        .or(c.add_partition_to_txn.as_ref().map(|x| x.request_id))
        .or(c.add_subscription_to_txn.as_ref().map(|x| x.request_id))
        .or(c.end_txn.as_ref().map(|x| x.request_id))
        .or(c.tc_client_connect_request.as_ref().map(|x| x.request_id))
}

/// One producer's appends: every SEND queued is one entry, a burst is one
/// append (one fsync), receipts go out in order once durable.
async fn append_loop(ledger: Arc<ManagedLedger>, producer_id: u64, mut sends: mpsc::Receiver<QueuedSend>, out: Outbox) {
    while let Some(first) = sends.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match sends.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        let entries = batch
            .iter()
            .map(|s| NewEntry {
                payload: s.section.raw.clone(),
                count: s.count,
                format: FORMAT_PULSAR,
                flags: 0,
                // Seek by publish time looks entries up by it (event times
                // need not be monotonic; publish times are, per producer).
                max_timestamp_ms: i64::try_from(s.section.metadata.publish_time).unwrap_or(-1),
            })
            .collect();
        match ledger.append_with(entries, true).await {
            Ok(appended) => {
                for (s, a) in batch.iter().zip(appended) {
                    let receipt = CommandSendReceipt {
                        producer_id,
                        sequence_id: s.sequence_id,
                        message_id: Some(message_id(a.ledger_id, a.entry_id, -1)),
                        highest_sequence_id: Some(s.highest_sequence_id),
                    };
                    let frame = frame::command(&cmd(Type::SendReceipt, |c| c.send_receipt = Some(receipt)));
                    if out.send(frame).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(topic = %ledger.name(), error = %e, "append failed: SEND_ERROR");
                for s in &batch {
                    let error = CommandSendError {
                        producer_id,
                        sequence_id: s.sequence_id,
                        error: ServerError::PersistenceError as i32,
                        message: e.to_string(),
                    };
                    let _ = out.send(frame::command(&cmd(Type::SendError, |c| c.send_error = Some(error)))).await;
                }
            }
        }
    }
}
