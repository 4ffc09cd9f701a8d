//! The producers of each topic partition and their access modes (PIP-68):
//! who may publish, who waits, who is fenced.
//!
//! - Shared: any number of producers, unless an exclusive one holds the
//!   topic or waits for it (ProducerBusy);
//! - Exclusive: admitted only when no other producer is attached, else
//!   ProducerFenced (what Pulsar answers, and what its clients' own tests
//!   expect);
//! - WaitForExclusive: admitted like Exclusive, or queued (the client is
//!   told its producer is not ready yet) and admitted in arrival order when
//!   the topic is free;
//! - ExclusiveWithFencing: admitted at once; every other producer is fenced
//!   first (closed, and its SENDs refused with ProducerFenced) and every
//!   waiting one refused with ProducerFenced.
//!
//! Every exclusive admission takes a new **topic epoch**, which the client
//! carries when it reconnects: a producer whose epoch is older than the
//! topic's was fenced by a later exclusive producer, and is refused with
//! ProducerFenced instead of taking the topic back. Epochs are kept in the
//! topic's properties (`pulsar.topicEpoch`, per partition), so a restart
//! does not forget who was fenced.
//!
//! A fenced producer cannot write once its fencer is admitted: the fencer
//! waits for the append the fenced producer may have in flight (the
//! producer's `writing` lock) before its admission is answered.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, Weak},
};

use crate::pulsar::proto::{
    base_command::Type, CommandCloseProducer, CommandProducerSuccess, ProducerAccessMode, ServerError,
};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{frame, outbox::Outbox};
use crate::topics::{TopicName, Topics};

/// A producer in the broker: its connection, and its id on that connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerKey {
    /// The connection's id.
    pub connection: u64,
    /// The client's producer id.
    pub producer: u64,
}

/// A refusal: the error code and the message for the client.
pub type Refusal = (ServerError, String);

/// What a producer that is attached holds: dropping it detaches the
/// producer (and admits the next one waiting, if any).
#[derive(Debug)]
pub struct Registration {
    key: ProducerKey,
    topic: String,
    registry: Weak<Registry>,
    /// Cancelled when an ExclusiveWithFencing producer takes over.
    pub fenced: CancellationToken,
    /// Held by the producer's append task around each append, so that a
    /// fencer can wait for the one in flight.
    pub writing: Arc<tokio::sync::Mutex<()>>,
    /// The topic epoch this producer was admitted with (exclusive modes).
    pub epoch: Option<u64>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.release(&self.topic, self.key);
        }
    }
}

/// The outcome of a PRODUCER command that is not refused.
#[derive(Debug)]
pub enum Admission {
    /// Attached now.
    Ready(Registration),
    /// WaitForExclusive, queued: the receiver yields the registration when
    /// the producer is admitted (it is dropped if the producer gives up).
    Queued(Registration, oneshot::Receiver<Result<u64, Refusal>>),
}

/// A producer asking to attach.
#[derive(Debug)]
pub struct Candidate {
    /// Its key.
    pub key: ProducerKey,
    /// Its name (chosen by the client or given by the broker).
    pub name: String,
    /// How many times the client has reconnected it (CommandProducer.epoch).
    pub reconnects: u64,
    /// Its access mode.
    pub mode: ProducerAccessMode,
    /// The topic epoch it carries when it reconnects.
    pub topic_epoch: Option<u64>,
    /// Its connection.
    pub out: Outbox,
}

/// A producer as stats show it.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// Its name.
    pub name: String,
    /// The client's producer id.
    pub producer_id: u64,
    /// Its connection (broker-wide id).
    pub connection: u64,
    /// Whether it has the topic to itself (an exclusive access mode).
    pub exclusive: bool,
    /// When it attached, Unix ms.
    pub since_ms: i64,
}

struct Member {
    since_ms: i64,
    key: ProducerKey,
    name: String,
    reconnects: u64,
    producer_id: u64,
    exclusive: bool,
    fenced: CancellationToken,
    writing: Arc<tokio::sync::Mutex<()>>,
    out: Outbox,
}

struct Waiter {
    key: ProducerKey,
    admitted: oneshot::Sender<Result<u64, Refusal>>,
    member: Member,
}

#[derive(Default)]
struct TopicProducers {
    epoch: u64,
    members: Vec<Member>,
    waiting: VecDeque<Waiter>,
}

impl TopicProducers {
    /// The same producer reconnecting (a later reconnect count under the
    /// same name) replaces its old self, whose connection is gone or going;
    /// two live producers may not share a name.
    fn replace_reconnected(&mut self, topic: &str, member: &Member) -> Result<(), Refusal> {
        let Some(old) = self.members.iter().find(|m| m.name == member.name) else { return Ok(()) };
        if old.reconnects >= member.reconnects {
            let message = format!("{topic}: a producer named {} is already connected", member.name);
            return Err((ServerError::ProducerBusy, message));
        }
        for m in self.members.iter().filter(|m| m.name == member.name) {
            m.fenced.cancel();
        }
        self.members.retain(|m| m.name != member.name);
        Ok(())
    }
}

/// Every topic partition's producers.
pub struct Registry {
    topics: Arc<Topics>,
    state: Mutex<HashMap<String, TopicProducers>>,
    me: Weak<Registry>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// The property holding a partition's topic epoch, on its topic's record.
fn epoch_property(partition: &TopicName) -> String {
    match partition.partition() {
        Some((_, n)) => format!("pulsar.topicEpoch.partition-{n}"),
        None => "pulsar.topicEpoch".to_owned(),
    }
}

impl Registry {
    /// A registry over `topics` (where epochs are kept).
    pub fn new(topics: Arc<Topics>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self { topics, state: Mutex::new(HashMap::new()), me: me.clone() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TopicProducers>> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The stored epoch of `partition` (0 when none is).
    async fn stored_epoch(&self, partition: &TopicName) -> u64 {
        match self.topics.record(&partition.base()).await {
            Ok(Some(record)) => {
                record.properties.get(&epoch_property(partition)).and_then(|v| v.parse().ok()).unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Keeps `epoch` as `partition`'s topic epoch (in the background: the
    /// in-memory epoch is the one checked while the broker runs).
    fn store_epoch(&self, partition: &TopicName, epoch: u64) {
        let (topics, partition) = (Arc::clone(&self.topics), partition.clone());
        tokio::spawn(async move {
            let change = vec![(epoch_property(&partition), Some(epoch.to_string()))];
            if let Err(e) = topics.update_properties(&partition.base(), change).await {
                tracing::warn!(topic = %partition, epoch, error = %e, "topic epoch not stored");
            }
        });
    }

    /// Attaches producer `key` to `partition` in `mode`, or says why not.
    /// `client_epoch` is the topic epoch a reconnecting exclusive producer
    /// carries.
    pub async fn register(&self, partition: &TopicName, candidate: Candidate) -> Result<Admission, Refusal> {
        let Candidate { key, name, reconnects, mode, topic_epoch, out } = candidate;
        let topic = partition.to_string();
        let loaded = self.lock().contains_key(&topic);
        let stored = if loaded { 0 } else { self.stored_epoch(partition).await };
        let member = Member {
            since_ms: crate::topics::now_ms(),
            key,
            name,
            reconnects,
            producer_id: key.producer,
            exclusive: mode != ProducerAccessMode::Shared,
            fenced: CancellationToken::new(),
            writing: Arc::new(tokio::sync::Mutex::new(())),
            out,
        };
        let (admission, fenced) = {
            let mut state = self.lock();
            let producers =
                state.entry(topic.clone()).or_insert_with(|| TopicProducers { epoch: stored, ..Default::default() });
            producers.replace_reconnected(&topic, &member)?;
            self.admit(producers, partition, member, mode, topic_epoch)?
        };
        for m in fenced {
            tracing::info!(topic = %topic, fenced = ?m.key, by = ?key, "producer fenced by an ExclusiveWithFencing producer");
            m.fenced.cancel();
            let close = frame::cmd(Type::CloseProducer, |c| {
                c.close_producer = Some(CommandCloseProducer { producer_id: m.producer_id, request_id: 0 });
            });
            let _ = m.out.send(frame::command(&close)).await;
            // Its append in flight, if any, ends before the fencer writes.
            let _ = m.writing.lock().await;
        }
        Ok(admission)
    }

    /// What `member` holds once attached.
    fn registration(&self, topic: &str, member: &Member, epoch: Option<u64>) -> Registration {
        Registration {
            key: member.key,
            topic: topic.to_owned(),
            registry: self.me.clone(),
            fenced: member.fenced.clone(),
            writing: Arc::clone(&member.writing),
            epoch,
        }
    }

    /// The access-mode rules, under the registry's lock: the admission, and
    /// the producers an ExclusiveWithFencing one fences.
    fn admit(
        &self,
        producers: &mut TopicProducers,
        partition: &TopicName,
        member: Member,
        mode: ProducerAccessMode,
        client_epoch: Option<u64>,
    ) -> Result<(Admission, Vec<Member>), Refusal> {
        let topic = partition.to_string();
        let holder = producers.members.iter().any(|m| m.exclusive) || !producers.waiting.is_empty();
        if let Some(epoch) = client_epoch.filter(|e| mode != ProducerAccessMode::Shared && *e < producers.epoch) {
            let message = format!(
                "{topic}: topic epoch {epoch} is older than the topic's ({}): a newer exclusive producer fenced this one",
                producers.epoch
            );
            return Err((ServerError::ProducerFenced, message));
        }
        // The epoch of an exclusive admission: the client's own when it
        // reconnects with one (not older than the topic's), else the next.
        let epoch = client_epoch.unwrap_or(producers.epoch + 1);
        let free = producers.members.is_empty() && producers.waiting.is_empty();
        let mut fenced = Vec::new();
        let admission = match mode {
            ProducerAccessMode::Shared if holder => {
                let message =
                    format!("{topic} has an exclusive producer (or one waiting): a Shared producer cannot attach");
                return Err((ServerError::ProducerBusy, message));
            }
            ProducerAccessMode::Shared => Admission::Ready(self.registration(&topic, &member, None)),
            ProducerAccessMode::Exclusive | ProducerAccessMode::WaitForExclusive if free => {
                producers.epoch = epoch;
                self.store_epoch(partition, epoch);
                Admission::Ready(self.registration(&topic, &member, Some(epoch)))
            }
            ProducerAccessMode::Exclusive => {
                let what = if holder { "an exclusive producer" } else { "other producers" };
                let message = format!("{topic} has {what}: an Exclusive producer cannot attach");
                return Err((ServerError::ProducerFenced, message));
            }
            ProducerAccessMode::WaitForExclusive => {
                let (tx, rx) = oneshot::channel();
                let r = self.registration(&topic, &member, None);
                producers.waiting.push_back(Waiter { key: member.key, admitted: tx, member });
                return Ok((Admission::Queued(r, rx), fenced));
            }
            ProducerAccessMode::ExclusiveWithFencing => {
                producers.epoch = epoch;
                fenced = std::mem::take(&mut producers.members);
                for waiter in producers.waiting.drain(..) {
                    let message =
                        format!("{topic}: an ExclusiveWithFencing producer took the topic while this one waited");
                    let _ = waiter.admitted.send(Err((ServerError::ProducerFenced, message)));
                }
                self.store_epoch(partition, epoch);
                Admission::Ready(self.registration(&topic, &member, Some(epoch)))
            }
        };
        producers.members.push(member);
        Ok((admission, fenced))
    }

    /// Detaches `key` from `topic` and admits the next waiting producer if
    /// the topic is free now.
    /// The producers attached to `topic` (a partition's name), for stats.
    pub fn publishers(&self, topic: &str) -> Vec<Publisher> {
        self.lock().get(topic).map_or_else(Vec::new, |p| {
            p.members
                .iter()
                .map(|m| Publisher {
                    name: m.name.clone(),
                    producer_id: m.producer_id,
                    connection: m.key.connection,
                    exclusive: m.exclusive,
                    since_ms: m.since_ms,
                })
                .collect()
        })
    }

    fn release(&self, topic: &str, key: ProducerKey) {
        let mut state = self.lock();
        let Some(producers) = state.get_mut(topic) else { return };
        producers.members.retain(|m| m.key != key);
        producers.waiting.retain(|w| w.key != key);
        while producers.members.is_empty() {
            let Some(waiter) = producers.waiting.pop_front() else { break };
            let epoch = producers.epoch + 1;
            if waiter.admitted.send(Ok(epoch)).is_ok() {
                producers.epoch = epoch;
                producers.members.push(waiter.member);
                if let Ok(name) = TopicName::parse(topic) {
                    self.store_epoch(&name, epoch);
                }
            }
        }
        if producers.members.is_empty() && producers.waiting.is_empty() {
            // The epoch is stored; it is read again on the next attach.
            state.remove(topic);
        }
    }
}

/// The PRODUCER_SUCCESS of an admitted or queued producer.
pub fn success(request_id: u64, name: String, epoch: Option<u64>, ready: bool) -> crate::pulsar::proto::BaseCommand {
    frame::cmd(Type::ProducerSuccess, |c| {
        c.producer_success = Some(CommandProducerSuccess {
            request_id,
            producer_name: name,
            last_sequence_id: Some(-1),
            topic_epoch: epoch,
            producer_ready: Some(ready),
            ..Default::default()
        });
    })
}
