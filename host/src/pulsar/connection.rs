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

use pulsar::message::proto::{
    base_command::Type, command_subscribe::SubType, BaseCommand, CommandAckResponse, CommandConnected, CommandError,
    CommandGetLastMessageIdResponse, CommandGetTopicsOfNamespaceResponse, CommandPing, CommandPong, CommandSuccess,
    KeySharedMode, ServerError,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter},
    sync::{mpsc, oneshot, Notify, Semaphore},
};

use super::{
    frame::{self, cmd, Frame, FrameError},
    outbox::Outbox,
    produce::{self, QueuedSend},
    producers::{self, Admission},
    subscription::{ConsumerLink, SeekTarget, SubCommand},
    PulsarService,
};
use crate::topics::TopicError;

/// The protocol version this broker speaks (the bundled proto's newest).
const PROTOCOL_VERSION: i32 = 19;
/// SENDs queued for one producer's append task.
const SEND_QUEUE: usize = 1024;
/// Pulsar's default keepalive interval.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(30);

/// A producer of this connection.
struct Producer {
    sends: mpsc::Sender<QueuedSend>,
    name: String,
    epoch: Option<u64>,
    /// False while a WaitForExclusive producer waits for the topic.
    admitted: Arc<std::sync::atomic::AtomicBool>,
    /// Cancelled when an exclusive producer fenced it.
    fenced: tokio_util::sync::CancellationToken,
}

struct Consumer {
    subscription: mpsc::Sender<SubCommand>,
}

/// The state of one connection.
pub struct Connection {
    service: Arc<PulsarService>,
    id: u64,
    out: Outbox,
    producers: HashMap<u64, Producer>,
    consumers: HashMap<u64, Consumer>,
    /// Bytes of SENDs received and not yet answered (`maxPendingBytesPerConnection`).
    pending_sends: Arc<Semaphore>,
    connected: bool,
    /// The SEND_ERROR code that fails one message of this client alone
    /// ([`produce::refusal_code`]).
    refusal: ServerError,
}

fn error(request_id: u64, error: ServerError, message: impl Into<String>) -> BaseCommand {
    cmd(Type::Error, |c| c.error = Some(CommandError { request_id, error: error as i32, message: message.into() }))
}

fn success(request_id: u64) -> BaseCommand {
    cmd(Type::Success, |c| c.success = Some(CommandSuccess { request_id, schema: None }))
}

pub(super) fn topic_error(e: &TopicError) -> ServerError {
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
        refusal: ServerError::NotAllowedError,
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
                self.refusal = produce::refusal_code(&connect.client_version);
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
                self.send(super::lookup::partitioned_metadata(&self.service, m).await).await;
            }
            Some(Type::Lookup) => {
                let Some(l) = command.lookup_topic else { return false };
                self.send(super::lookup::lookup(&self.service, &l)).await;
            }
            Some(Type::Producer) => {
                let Some(p) = command.producer else { return false };
                self.create_producer(p).await;
            }
            Some(Type::Send) => {
                let Some(s) = command.send else { return false };
                let Some(section) = message else {
                    tracing::warn!("SEND without a message: closing");
                    return false;
                };
                return self.queue_send(s, section).await;
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
                let topic = s.topic.clone();
                match self.subscribe(s).await {
                    Ok(()) => self.send(success(request_id)).await,
                    Err((e, message)) => {
                        tracing::info!(%topic, error = ?e, %message, "subscription refused");
                        self.send(error(request_id, e, message)).await;
                    }
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
            Some(Type::GetSchema) => {
                // No registry: answered in the command's own response type,
                // which the client matches to its request (a generic ERROR
                // leaves the C++ client waiting for its operation timeout),
                // with the code Pulsar gives for a topic without a schema.
                let Some(g) = command.get_schema else { return false };
                let response = pulsar::message::proto::CommandGetSchemaResponse {
                    request_id: g.request_id,
                    error_code: Some(ServerError::TopicNotFound as i32),
                    error_message: Some(format!("{}: no schema: this broker keeps no schema registry", g.topic)),
                    ..Default::default()
                };
                self.send(cmd(Type::GetSchemaResponse, |c| c.get_schema_response = Some(response))).await;
            }
            Some(Type::GetOrCreateSchema) => {
                let Some(g) = command.get_or_create_schema else { return false };
                let response = pulsar::message::proto::CommandGetOrCreateSchemaResponse {
                    request_id: g.request_id,
                    error_code: Some(ServerError::NotAllowedError as i32),
                    error_message: Some(format!("{}: this broker keeps no schema registry", g.topic)),
                    ..Default::default()
                };
                self.send(cmd(Type::GetOrCreateSchemaResponse, |c| c.get_or_create_schema_response = Some(response)))
                    .await;
            }
            Some(Type::GetTopicsOfNamespace) => {
                let Some(g) = command.get_topics_of_namespace else { return false };
                // Every topic here is persistent: a listing of non-persistent ones is empty.
                let non_persistent =
                    g.mode == Some(pulsar::message::proto::command_get_topics_of_namespace::Mode::NonPersistent as i32);
                let listed = if non_persistent { Ok(Vec::new()) } else { self.service.topics.list(&g.namespace).await };
                match listed {
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

    /// PRODUCER: attaches a producer in its access mode, or says why not.
    async fn create_producer(&mut self, p: pulsar::message::proto::CommandProducer) {
        if self.producers.get(&p.producer_id).is_some_and(|e| e.fenced.is_cancelled()) {
            // Fenced (the broker closed it): the client creates it again.
            self.producers.remove(&p.producer_id);
        }
        if let Some(existing) = self.producers.get(&p.producer_id) {
            // The client retried (its request timed out): the same answer.
            let ready = existing.admitted.load(Ordering::Acquire);
            let again = producers::success(p.request_id, existing.name.clone(), existing.epoch, ready);
            self.send(again).await;
            return;
        }
        let most = self.service.limits.max_producers_per_connection;
        if self.producers.len() >= most {
            let message = format!("this connection has {most} producers (maxProducersPerConnection)");
            tracing::info!(topic = %p.topic, "{message}: producer refused");
            self.send(error(p.request_id, ServerError::NotAllowedError, message)).await;
            return;
        }
        if p.txn_enabled() {
            let message = "transactions are not supported by this broker (txn_enabled)";
            self.send(error(p.request_id, ServerError::NotAllowedError, message)).await;
            return;
        }
        let name = match super::lookup::parse(&p.topic) {
            Ok(name) => name,
            Err((e, message)) => return self.send(error(p.request_id, e, message)).await,
        };
        let ledger = match self.service.topics.ledger(&name, true).await {
            Ok(ledger) => ledger,
            Err(e) => return self.send(error(p.request_id, topic_error(&e), e.to_string())).await,
        };
        if let Some(initial) = p.initial_subscription_name.as_deref().filter(|n| !n.is_empty()) {
            // Created with the producer, so that nothing it sends is missed.
            let created = ledger.open_cursor(initial, true, polyport_ledger::InitialPosition::Earliest).await;
            if let Err(e) = created {
                let message = format!("initial subscription {initial}: {e}");
                return self.send(error(p.request_id, ServerError::PersistenceError, message)).await;
            }
        }
        let mode = p.producer_access_mode();
        let producer_name = p.producer_name.filter(|n| !n.is_empty()).unwrap_or_else(|| self.service.producer_name());
        let candidate = producers::Candidate {
            key: (self.id, p.producer_id),
            name: producer_name.clone(),
            reconnects: p.epoch.unwrap_or(0),
            mode,
            topic_epoch: p.topic_epoch,
            out: self.out.clone(),
        };
        let admission = self.service.producers_by_topic.register(&name, candidate).await;
        let (registration, queued) = match admission {
            Ok(Admission::Ready(r)) => (r, None),
            Ok(Admission::Queued(r, admitted)) => (r, Some(admitted)),
            Err((e, message)) => {
                tracing::info!(topic = %p.topic, ?mode, %message, "producer refused");
                return self.send(error(p.request_id, e, message)).await;
            }
        };
        let (tx, rx) = mpsc::channel(SEND_QUEUE);
        let (epoch, fenced) = (registration.epoch, registration.fenced.clone());
        // The task holds the registration: the producer leaves its topic
        // once what it queued is stored, not before.
        tokio::spawn(produce::append_loop(ledger, p.producer_id, rx, self.out.clone(), registration));
        let admitted = Arc::new(std::sync::atomic::AtomicBool::new(queued.is_none()));
        let producer =
            Producer { sends: tx, name: producer_name.clone(), epoch, admitted: Arc::clone(&admitted), fenced };
        self.producers.insert(p.producer_id, producer);
        match queued {
            None => self.send(producers::success(p.request_id, producer_name, epoch, true)).await,
            Some(queued_until) => {
                // WaitForExclusive: not ready yet (the client waits without a
                // timeout); the same request is answered again when the topic
                // is free, or refused if a fencing producer takes it.
                self.send(producers::success(p.request_id, producer_name.clone(), None, false)).await;
                let out = self.out.clone();
                let request_id = p.request_id;
                tokio::spawn(async move {
                    let answer = match queued_until.await {
                        Ok(Ok(epoch)) => {
                            admitted.store(true, Ordering::Release);
                            producers::success(request_id, producer_name, Some(epoch), true)
                        }
                        Ok(Err((e, message))) => error(request_id, e, message),
                        // The producer was closed while it waited.
                        Err(_) => return,
                    };
                    let _ = out.send(frame::command(&answer)).await;
                });
            }
        }
    }

    /// SEND: checks the message and queues it for its producer's append;
    /// false ends the connection.
    async fn queue_send(&mut self, s: pulsar::message::proto::CommandSend, section: frame::MessageSection) -> bool {
        let count = match produce::check(&s, &section) {
            Ok(count) => count,
            Err(message) => {
                tracing::info!(producer_id = s.producer_id, sequence_id = s.sequence_id, %message, "SEND refused");
                let refusal = produce::refusal(s.producer_id, s.sequence_id, self.refusal, message);
                self.send(refusal).await;
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
            pending,
        };
        match self.producers.get(&s.producer_id) {
            Some(producer) if !producer.admitted.load(Ordering::Acquire) => {
                let message = format!("producer {} is waiting for exclusive access: not ready", s.producer_id);
                self.send(produce::refusal(s.producer_id, s.sequence_id, ServerError::NotAllowedError, message)).await;
            }
            Some(producer) => {
                let _ = producer.sends.send(item).await;
            }
            None => {
                let message = format!("no producer {} on this connection", s.producer_id);
                self.send(produce::refusal(s.producer_id, s.sequence_id, ServerError::UnknownError, message)).await;
            }
        }
        true
    }

    async fn subscribe(&mut self, s: pulsar::message::proto::CommandSubscribe) -> Result<(), (ServerError, String)> {
        if let Some(old) = self.consumers.remove(&s.consumer_id) {
            // The same consumer subscribing again (after the CLOSE_CONSUMER of
            // a seek, or a SUBSCRIBE retried after a timeout): it replaces
            // its old link.
            let _ = old.subscription.send(SubCommand::Remove((self.id, s.consumer_id))).await;
        }
        // Key_Shared Sticky: the consumer's own slots of the key hash space.
        let hash_ranges: Vec<(u32, u32)> =
            match s.key_shared_meta.as_ref().filter(|_| s.sub_type() == SubType::KeyShared) {
                Some(meta) if meta.key_shared_mode() == KeySharedMode::Sticky => {
                    let ranges: Vec<(u32, u32)> = meta
                        .hash_ranges
                        .iter()
                        .map(|r| (u32::try_from(r.start).unwrap_or(u32::MAX), u32::try_from(r.end).unwrap_or(u32::MAX)))
                        .collect();
                    if ranges.is_empty() {
                        let message = "Key_Shared in Sticky mode needs the consumer's hash ranges";
                        return Err((ServerError::ConsumerAssignError, message.into()));
                    }
                    ranges
                }
                _ => Vec::new(),
            };
        let name = super::lookup::parse(&s.topic)?;
        // force_topic_creation=false: the topic must exist already.
        let create = s.force_topic_creation.unwrap_or(true);
        let ledger = self.service.topics.ledger(&name, create).await.map_err(|e| (topic_error(&e), e.to_string()))?;
        let sub_type = s.sub_type();
        let durable = s.durable.unwrap_or(true);
        let rollback = s.start_message_rollback_duration_sec.filter(|d| *d > 0);
        let initial = match (&s.start_message_id, s.initial_position()) {
            // A reader that starts some time back (startMessageFromRollbackDuration).
            (_, _) if rollback.is_some() => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let since = now.saturating_sub(rollback.unwrap_or(0).saturating_mul(1000) as i64);
                match ledger.nonblocking(move |l| l.find_by_time(since)).await {
                    Ok(Some(entry)) => polyport_ledger::InitialPosition::Offset(entry.meta.base_offset),
                    Ok(None) => polyport_ledger::InitialPosition::Latest,
                    Err(e) => return Err((ServerError::PersistenceError, e.to_string())),
                }
            }
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
            hash_ranges,
        };
        let subscription = self.service.attach(&ledger, &s.subscription, sub_type, durable, initial, link).await?;
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
        .or(c.end_txn_on_partition.as_ref().map(|x| x.request_id))
        .or(c.end_txn_on_subscription.as_ref().map(|x| x.request_id))
        .or(c.tc_client_connect_request.as_ref().map(|x| x.request_id))
}
