//! The consumer side of a connection: SUBSCRIBE, FLOW, ACK,
//! REDELIVER_UNACKNOWLEDGED_MESSAGES, CLOSE_CONSUMER, UNSUBSCRIBE, SEEK and
//! GET_LAST_MESSAGE_ID. Each goes to the subscription's task
//! ([`super::subscription`]), which owns the consumers, their permits and
//! what they have not acknowledged.
//!
//! Served: every subscription type (Key_Shared in AutoSplit and Sticky
//! modes), durable subscriptions and readers, start positions by message id,
//! by initial position and by rollback duration, acknowledgements individual,
//! cumulative and by batch index (with receipts), seeks by message id and by
//! publish time. Not served: schemas (accepted, not checked),
//! `replicate_subscription_state` (one cluster), compaction (`read_compacted`
//! reads the whole topic). docs/pulsar.md lists every field.

use crate::pulsar::proto::{
    base_command::Type, command_subscribe::SubType, CommandAck, CommandAckResponse, CommandCloseConsumer, CommandFlow,
    CommandGetLastMessageId, CommandGetLastMessageIdResponse, CommandRedeliverUnacknowledgedMessages, CommandSeek,
    CommandSubscribe, CommandUnsubscribe, KeySharedMode, ServerError,
};
use crate::security::authz::Action;

use super::{
    connection::{error, success, topic_error, Connection, Consumer},
    frame::cmd,
    subscription::{ConsumerLink, SeekTarget, SubCommand},
};

impl Connection {
    /// SUBSCRIBE: attaches a consumer to its subscription, or says why not.
    pub(super) async fn subscribe_command(&mut self, s: CommandSubscribe) {
        let request_id = s.request_id;
        let most = self.service.limits.max_consumers_per_connection;
        if !self.consumers.contains_key(&s.consumer_id) && self.consumers.len() >= most {
            let message = format!("this connection has {most} consumers (maxConsumersPerConnection)");
            tracing::info!(topic = %s.topic, "{message}: consumer refused");
            self.send(error(request_id, ServerError::NotAllowedError, message)).await;
            return;
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

    /// FLOW: more permits for a consumer.
    pub(super) async fn flow(&mut self, f: CommandFlow) {
        if let Some(c) = self.consumers.get(&f.consumer_id) {
            let _ = c.subscription.send(SubCommand::Flow(self.consumer_key(f.consumer_id), f.message_permits)).await;
        }
    }

    /// ACK: acknowledgements, answered when the client asks for a receipt.
    pub(super) async fn ack(&mut self, a: CommandAck) {
        let ack_type = a.ack_type();
        let key = self.consumer_key(a.consumer_id);
        let Some(request_id) = a.request_id else {
            if let Some(c) = self.consumers.get(&a.consumer_id) {
                let _ = c.subscription.send(SubCommand::Ack(key, ack_type, a.message_id, None)).await;
            }
            return;
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

    /// REDELIVER_UNACKNOWLEDGED_MESSAGES.
    pub(super) async fn redeliver(&mut self, r: CommandRedeliverUnacknowledgedMessages) {
        if let Some(c) = self.consumers.get(&r.consumer_id) {
            let key = self.consumer_key(r.consumer_id);
            let _ = c.subscription.send(SubCommand::Redeliver(key, r.message_ids)).await;
        }
    }

    /// CLOSE_CONSUMER: its unacknowledged messages go to the others.
    pub(super) async fn close_consumer(&mut self, c: CommandCloseConsumer) {
        if let Some(consumer) = self.consumers.remove(&c.consumer_id) {
            let _ = consumer.subscription.send(SubCommand::Remove(self.consumer_key(c.consumer_id))).await;
        }
        self.send(success(c.request_id)).await;
    }

    /// UNSUBSCRIBE: deletes the subscription (only its last consumer may).
    pub(super) async fn unsubscribe(&mut self, u: CommandUnsubscribe) {
        let key = self.consumer_key(u.consumer_id);
        match self.ask(u.consumer_id, |tx| SubCommand::Unsubscribe(key, tx)).await {
            Ok(()) => {
                self.consumers.remove(&u.consumer_id);
                self.send(success(u.request_id)).await;
            }
            Err(m) => self.send(error(u.request_id, ServerError::UnknownError, m)).await,
        }
    }

    /// SEEK: resets the subscription; its consumers are closed and subscribe again.
    pub(super) async fn seek(&mut self, s: CommandSeek) {
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

    /// GET_LAST_MESSAGE_ID.
    pub(super) async fn last_message_id(&mut self, g: CommandGetLastMessageId) {
        match self.ask(g.consumer_id, SubCommand::LastMessageId).await {
            Ok((last, mark)) => {
                let response = CommandGetLastMessageIdResponse {
                    last_message_id: last,
                    request_id: g.request_id,
                    consumer_mark_delete_position: Some(mark),
                };
                self.send(cmd(Type::GetLastMessageIdResponse, |c| c.get_last_message_id_response = Some(response)))
                    .await;
            }
            Err(m) => self.send(error(g.request_id, ServerError::UnknownError, m)).await,
        }
    }

    async fn subscribe(&mut self, s: CommandSubscribe) -> Result<(), (ServerError, String)> {
        if let Some(old) = self.consumers.remove(&s.consumer_id) {
            // The same consumer subscribing again (after the CLOSE_CONSUMER of
            // a seek, or a SUBSCRIBE retried after a timeout): it replaces
            // its old link.
            let _ = old.subscription.send(SubCommand::Remove(self.consumer_key(s.consumer_id))).await;
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
        super::lookup::authorize(&self.service, self.role.as_deref(), Action::Consume, &name).await?;
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
            (None, crate::pulsar::proto::command_subscribe::InitialPosition::Earliest) => {
                polyport_ledger::InitialPosition::Earliest
            }
            (None, _) => polyport_ledger::InitialPosition::Latest,
        };
        let link = ConsumerLink {
            key: self.consumer_key(s.consumer_id),
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
