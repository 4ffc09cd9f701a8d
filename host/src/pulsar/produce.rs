//! Publishing: what a SEND must satisfy before it is stored, and each
//! producer's append task.
//!
//! A SEND's message is stored as the client wrote it, so every metadata
//! field the broker does not act on is one the client would believe acted
//! on. Those that change what delivery means (transactions, replication,
//! schema versions, markers) are refused here, naming the field; the rest
//! are listed in docs/pulsar.md.

use std::sync::Arc;

use polyport_ledger::{ManagedLedger, NewEntry};
use pulsar::message::proto::{base_command::Type, CommandSend, CommandSendError, CommandSendReceipt, ServerError};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::{
    frame::{self, cmd, MessageSection},
    outbox::Outbox,
    producers::Registration,
    subscription::message_id,
    FORMAT_PULSAR,
};

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
) -> pulsar::message::proto::BaseCommand {
    let e = CommandSendError { producer_id, sequence_id, error: error as i32, message };
    cmd(Type::SendError, |c| c.send_error = Some(e))
}

/// One producer's appends: every SEND queued is one entry, a burst is one
/// append (one fsync), receipts go out in order once durable. Once the
/// producer is fenced nothing more is stored; its `writing` lock is held
/// around each append so that a fencing producer waits for the one in
/// flight. The registration is dropped (the producer leaves its topic)
/// when the connection drops the sending side and the queue is drained.
pub async fn append_loop(
    ledger: Arc<ManagedLedger>,
    producer_id: u64,
    mut sends: mpsc::Receiver<QueuedSend>,
    out: Outbox,
    registration: Registration,
) {
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
        let appended = {
            let _writing = writing.lock().await;
            if fenced.is_cancelled() {
                Err((ServerError::ProducerFenced, "the producer was fenced by an exclusive producer".to_owned()))
            } else {
                ledger.append_with(entries, true).await.map_err(|e| (ServerError::PersistenceError, e.to_string()))
            }
        };
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
