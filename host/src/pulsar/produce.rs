//! Publishing: what a SEND must satisfy before it is stored, and each
//! producer's append task.
//!
//! A SEND's message is stored as the client wrote it, so every metadata
//! field the broker does not act on is one the client would believe acted
//! on. Those that change what delivery means (transactions, replication,
//! schema versions, markers) are refused here, naming the field; the rest
//! are listed in docs/pulsar.md.

use crate::security::authz::Action;
use std::sync::{atomic::Ordering, Arc};

use crate::pulsar::proto::{
    base_command::Type, CommandCloseProducer, CommandProducer, CommandSend, CommandSendError, CommandSendReceipt,
    ServerError,
};
use polyport_ledger::{ManagedLedger, NewEntry};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::{
    connection::{error, success, topic_error, Connection, Producer},
    frame::{self, cmd, MessageSection},
    outbox::Outbox,
    producers::Registration,
    producers::{self, Admission},
    subscription::message_id,
    FORMAT_PULSAR,
};

/// SENDs queued for one producer's append task.
const SEND_QUEUE: usize = 1024;

/// A SEND waiting for its append, holding its share of the connection's
/// budget of pending bytes until it is answered.
pub struct QueuedSend {
    /// The client's sequence id.
    pub sequence_id: u64,
    /// The batch's highest sequence id.
    pub highest_sequence_id: u64,
    /// Messages (offsets) in the entry.
    pub count: u32,
    /// What is stored.
    pub section: MessageSection,
    /// Released when the SEND is answered.
    pub pending: OwnedSemaphorePermit,
}

/// The SEND_ERROR code that makes a client fail the refused message alone.
///
/// Pulsar refuses a message with NotAllowedError, on which the Java and Go
/// clients fail that message. The C++ client (and the Python and Node.js
/// clients built on it, which announce themselves as `Pulsar-CPP-…`) fails
/// a message alone only on ChecksumError; on any other code it closes the
/// connection and sends the same message again, without end.
pub fn refusal_code(client_version: &str) -> ServerError {
    if client_version.starts_with("Pulsar-CPP") {
        ServerError::ChecksumError
    } else {
        ServerError::NotAllowedError
    }
}

/// The offsets a SEND's entry takes, or why it is refused.
///
/// Its size needs no check here: the frame holding it was read only if it
/// is within `maxMessageSize` and Pulsar's 10 KiB of padding (clients size a
/// message or chunk before adding its metadata, so an exact check against
/// `maxMessageSize` would refuse every full-sized chunk).
pub fn check(s: &CommandSend, section: &MessageSection) -> Result<u32, String> {
    let m = &section.metadata;
    if s.txnid_least_bits.unwrap_or(0) != 0
        || s.txnid_most_bits.unwrap_or(0) != 0
        || m.txnid_least_bits.is_some()
        || m.txnid_most_bits.is_some()
    {
        return Err("transactional messages (txnid_*) are not supported by this broker".into());
    }
    if !m.replicate_to.is_empty() {
        return Err(format!(
            "replicate_to ({}) is not supported: this broker does not replicate",
            m.replicate_to.join(", ")
        ));
    }
    if m.schema_version.is_some() {
        return Err("schema_version is not supported: this broker keeps no schema registry".into());
    }
    if m.marker_type.is_some() {
        return Err("marker messages (marker_type) are written by brokers, not producers".into());
    }
    if m.replicated_from.is_some() {
        return Err("replicated_from: this broker takes no replicated messages".into());
    }
    // The offsets the entry takes: the metadata's count, checked against
    // the bytes (and matching the command's, if it says).
    let count =
        super::convert::message_count(m, section.payload_len()).map_err(|e| format!("malformed message: {e}"))?;
    match s.num_messages {
        Some(n) if n != count as i32 && m.num_messages_in_batch.is_some() => {
            Err(format!("malformed message: SEND says {n} messages, its batch {count}"))
        }
        _ => Ok(count),
    }
}

/// The SEND_ERROR refusing one message.
pub fn refusal(
    producer_id: u64,
    sequence_id: u64,
    error: ServerError,
    message: String,
) -> crate::pulsar::proto::BaseCommand {
    let e = CommandSendError { producer_id, sequence_id, error: error as i32, message };
    cmd(Type::SendError, |c| c.send_error = Some(e))
}

/// WaitForExclusive: the producer was told it is not ready (the client
/// waits without a timeout); the same request is answered again when the
/// topic is free, or refused if a fencing producer takes it. Nothing is
/// answered if the producer is closed while it waits.
async fn answer_when_admitted(
    queued_until: tokio::sync::oneshot::Receiver<Result<u64, producers::Refusal>>,
    admitted: Arc<std::sync::atomic::AtomicBool>,
    request_id: u64,
    name: String,
    out: Outbox,
) {
    let answer = match queued_until.await {
        Ok(Ok(epoch)) => {
            admitted.store(true, Ordering::Release);
            producers::success(request_id, name, Some(epoch), true)
        }
        Ok(Err((e, message))) => error(request_id, e, message),
        Err(_) => return,
    };
    let _ = out.send(frame::command(&answer)).await;
}

/// One producer's appends: every SEND queued is one entry, a burst is one
/// append (one fsync), receipts go out in order once durable. Once the
/// producer is fenced nothing more is stored; its `writing` lock is held
/// around each append so that a fencing producer waits for the one in
/// flight. The registration is dropped (the producer leaves its topic)
/// when the connection drops the sending side and the queue is drained.
///
/// In a cluster, `served` is asked before and after each append: once this
/// broker no longer owns the topic (or its session may have expired), the
/// producer is closed (CLOSE_PRODUCER) with what it sent unacknowledged,
/// and the client looks the topic up again and resends to its owner.
pub async fn append_loop(
    ledger: Arc<ManagedLedger>,
    served: impl Fn(bool) -> bool + Send + 'static,
    producer_id: u64,
    mut sends: mpsc::Receiver<QueuedSend>,
    out: Outbox,
    registration: Registration,
    write_latency: prometheus::Histogram,
) {
    /// Counts the producer among its topic's while its task runs.
    struct Attached(Arc<ManagedLedger>);
    impl Drop for Attached {
        fn drop(&mut self) {
            self.0.stats().producers_add(-1);
        }
    }
    ledger.stats().producers_add(1);
    let _attached = Attached(Arc::clone(&ledger));
    let (fenced, writing) = (&registration.fenced, &registration.writing);
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
            .map(|s| {
                let entry = NewEntry {
                    payload: s.section.raw.clone(),
                    count: s.count,
                    format: FORMAT_PULSAR,
                    flags: 0,
                    // Seek by publish time looks entries up by it (event times
                    // need not be monotonic; publish times are, per producer).
                    max_timestamp_ms: i64::try_from(s.section.metadata.publish_time).unwrap_or(-1),
                };
                // The checksum the frame carried, verified when it was read:
                // the ledger stores it rather than computing it again.
                (entry, s.section.crc)
            })
            .collect();
        let appended = {
            let _writing = writing.lock().await;
            if fenced.is_cancelled() {
                Err((ServerError::ProducerFenced, "the producer was fenced by an exclusive producer".to_owned()))
            } else if !served(false) {
                Err((ServerError::ServiceNotReady, String::new()))
            } else {
                let started = std::time::Instant::now();
                let appended = ledger.append_checked(entries, true).await;
                write_latency.observe(started.elapsed().as_secs_f64());
                match appended {
                    Ok(_) if !served(true) => Err((ServerError::ServiceNotReady, String::new())),
                    other => other.map_err(|e| (ServerError::PersistenceError, e.to_string())),
                }
            }
        };
        if matches!(appended, Err((ServerError::ServiceNotReady, _))) {
            tracing::info!(topic = %ledger.name(), producer_id, "topic no longer served here: producer closed");
            // Marked fenced so that the client's new PRODUCER replaces it.
            fenced.cancel();
            let close = CommandCloseProducer { producer_id, request_id: 0 };
            let _ = out.send(frame::command(&cmd(Type::CloseProducer, |c| c.close_producer = Some(close)))).await;
            return;
        }
        match appended {
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
            Err((code, message)) => {
                tracing::warn!(topic = %ledger.name(), error = %message, "append refused or failed: SEND_ERROR");
                for s in &batch {
                    let _ = out.send(frame::command(&refusal(producer_id, s.sequence_id, code, message.clone()))).await;
                }
            }
        }
    }
}

impl Connection {
    /// PRODUCER: attaches a producer in its access mode, or says why not.
    pub(super) async fn create_producer(&mut self, p: CommandProducer) {
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
        let role = self.role.as_deref();
        if let Err((e, message)) = super::lookup::authorize(&self.service, role, Action::Produce, &name).await {
            tracing::info!(topic = %p.topic, %message, "producer refused");
            return self.send(error(p.request_id, e, message)).await;
        }
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
            key: producers::ProducerKey { connection: self.id, producer: p.producer_id },
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
        let (topics, served_name) = (Arc::clone(&self.service.topics), name.clone());
        // Before an append: served here; after it: may be acknowledged.
        let served = move |stored: bool| match (stored, topics.cluster()) {
            (true, Some(cluster)) => cluster.acknowledges(&served_name),
            _ => topics.serves(&served_name),
        };
        let latency = self.service.metrics.storage_write.clone();
        tokio::spawn(append_loop(ledger, served, p.producer_id, rx, self.out.clone(), registration, latency));
        let admitted = Arc::new(std::sync::atomic::AtomicBool::new(queued.is_none()));
        let producer =
            Producer { sends: tx, name: producer_name.clone(), epoch, admitted: Arc::clone(&admitted), fenced };
        self.producers.insert(p.producer_id, producer);
        match queued {
            None => self.send(producers::success(p.request_id, producer_name, epoch, true)).await,
            Some(queued_until) => {
                self.send(producers::success(p.request_id, producer_name.clone(), None, false)).await;
                let out = self.out.clone();
                tokio::spawn(answer_when_admitted(queued_until, admitted, p.request_id, producer_name, out));
            }
        }
    }

    /// SEND: checks the message and queues it for its producer's append;
    /// false ends the connection.
    pub(super) async fn queue_send(&mut self, s: CommandSend, section: MessageSection) -> bool {
        let count = match check(&s, &section) {
            Ok(count) => count,
            Err(message) => {
                tracing::info!(producer_id = s.producer_id, sequence_id = s.sequence_id, %message, "SEND refused");
                let refusal = refusal(s.producer_id, s.sequence_id, self.refusal, message);
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
                self.send(refusal(s.producer_id, s.sequence_id, ServerError::NotAllowedError, message)).await;
            }
            Some(producer) => {
                let _ = producer.sends.send(item).await;
            }
            None => {
                let message = format!("no producer {} on this connection", s.producer_id);
                self.send(refusal(s.producer_id, s.sequence_id, ServerError::UnknownError, message)).await;
            }
        }
        true
    }

    /// CLOSE_PRODUCER: what it queued is still stored and answered.
    pub(super) async fn close_producer(&mut self, c: CommandCloseProducer) {
        self.producers.remove(&c.producer_id);
        self.send(success(c.request_id)).await;
    }
}
