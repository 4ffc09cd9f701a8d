//! The host services as a handler uses them.

use std::{
    future::Future,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use abi_stable::std_types::{RStr, RString, Tuple2};
use async_ffi::FutureExt;
use tokio::sync::oneshot;

use crate::{
    convert::FfiConversionBox,
    ffi::{FfiHostBox, FfiJoinHandleBox, LogLevel},
    storage::{BrokerEntry, FfiTopicsBox, OpenOptions, PartitionOwner, TopicConfig, TopicLookup, TopicPolicies},
    ErrorKind, HandlerError, Partition,
};

/// The host's services: the only way a handler reaches the runtime, timers,
/// topics, the [`Partition`] handles through which it appends and reads,
/// and the conversion of other protocols' entries. Cheap to clone; usable
/// from any thread.
#[derive(Clone)]
pub struct Host {
    inner: FfiHostBox,
    topics: FfiTopicsBox,
    conversion: FfiConversionBox,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Host")
    }
}

impl Host {
    /// Wraps the host's service object.
    pub fn from_ffi(inner: FfiHostBox) -> Self {
        let (topics, conversion) = (inner.topics(), inner.conversion());
        Self { inner, topics, conversion }
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

/// The topic services. Topic arguments are Pulsar names
/// (`persistent://tenant/ns/topic`, `tenant/ns/topic`, or `topic` in
/// `public/default`). What is stored is appended and read through a
/// [`Partition`] handle ([`open_partition`](Self::open_partition)).
impl Host {
    /// Which broker owns `topic` (on one broker: this one), and its canonical name.
    ///
    /// ```no_run
    /// # async fn f(host: polyport_handler_api::Host) -> Result<(), polyport_handler_api::HandlerError> {
    /// let lookup = host.lookup("orders").await?;
    /// assert_eq!(lookup.topic.as_str(), "persistent://public/default/orders");
    /// # Ok(()) }
    /// ```
    pub async fn lookup(&self, topic: &str) -> Result<TopicLookup, HandlerError> {
        self.topics.lookup(topic.into()).await.into_result()
    }

    /// The live brokers of the cluster, this one included (on a standalone
    /// broker, this one alone, node 0). A handler names them to its
    /// clients (Kafka's Metadata lists every broker by node id).
    ///
    /// A host older than handler-api 0.2.1 answers
    /// [`ErrorKind::UNSUPPORTED`](crate::ErrorKind::UNSUPPORTED): treat it as a standalone broker.
    pub async fn brokers(&self) -> Result<Vec<BrokerEntry>, HandlerError> {
        self.topics.brokers().await.into_result().map(|v| v.into_iter().collect())
    }

    /// Who serves each partition of `topic` (one entry, partition 0, for a
    /// non-partitioned topic), created first if `auto_create` allows. In a
    /// cluster an unowned partition is placed now: the answer names the
    /// broker that will claim it when a client first uses it there. A
    /// handler sends its clients to the owner; appends and reads on another
    /// broker answer [`ErrorKind::NOT_OWNER`](crate::ErrorKind::NOT_OWNER).
    ///
    /// ```no_run
    /// # async fn f(host: polyport_handler_api::Host) -> Result<(), polyport_handler_api::HandlerError> {
    /// for owner in host.owners("orders", false).await? {
    ///     println!("partition {} on node {}", owner.partition, owner.node_id);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn owners(&self, topic: &str, auto_create: bool) -> Result<Vec<PartitionOwner>, HandlerError> {
        self.topics.owners(topic.into(), auto_create).await.into_result().map(|v| v.into_iter().collect())
    }

    /// This broker's node id (see [`BrokerEntry::node_id`]): 0 on a standalone broker.
    pub fn node_id(&self) -> i32 {
        self.topics.node_id()
    }

    /// Reserves `count` numbers of the counter `counter` (a name of the
    /// handler's choosing, such as `kafka-producer-ids`): the first of a
    /// block no other call gets, on this broker or any other of its cluster,
    /// before or after a restart. A counter that does not exist yet starts
    /// at `floor`. Kafka's producer ids are handed out this way, a block at
    /// a time. A host older than 0.2.1 answers
    /// [`ErrorKind::UNSUPPORTED`](crate::ErrorKind::UNSUPPORTED).
    ///
    /// ```no_run
    /// # async fn f(host: polyport_handler_api::Host) -> Result<(), polyport_handler_api::HandlerError> {
    /// let first = host.allocate("my-ids", 1000, 1).await?;
    /// // first..first + 1000 are this handler's own.
    /// # Ok(()) }
    /// ```
    pub async fn allocate(&self, counter: &str, count: u64, floor: u64) -> Result<u64, HandlerError> {
        self.topics.allocate(counter.into(), count, floor).await.into_result()
    }

    /// Partition count of `topic` (0: non-partitioned); with `auto_create`, a
    /// missing topic is created per `allowAutoTopicCreation*`.
    pub async fn partitioned_metadata(&self, topic: &str, auto_create: bool) -> Result<u32, HandlerError> {
        self.topics.partitioned_metadata(topic.into(), auto_create).await.into_result()
    }

    /// Opens `partition` (a non-partitioned topic, or one partition,
    /// `topic-partition-N`): the handle through which it is appended to and
    /// read. Open a partition once and keep the handle: its calls parse no
    /// name, and its appends are queued in the order they are first polled.
    /// A handle stays valid when the topic is deleted (its calls answer
    /// [`ErrorKind::NOT_FOUND`], or recreate the topic on append if it was
    /// opened with `auto_create`) and when it is recreated.
    ///
    /// With `options.wait_ms`, a missing topic is waited for (until another
    /// client creates it) before the answer is NOT_FOUND: a consumer that
    /// subscribes before the producer's first message needs no polling.
    ///
    /// ```no_run
    /// # async fn f(host: polyport_handler_api::Host) -> Result<(), polyport_handler_api::HandlerError> {
    /// use polyport_handler_api::{bytes::Bytes, storage::{NewEntry, OpenOptions}};
    /// let orders = host.open_partition("orders", OpenOptions { auto_create: true, wait_ms: 0 }).await?;
    /// let entry = NewEntry { payload: Bytes::from_static(b"hello"), count: 1, format: 100, flags: 0, max_timestamp_ms: -1 };
    /// let stored = orders.append(vec![entry], true).await?;
    /// println!("offset {}, log start {}", stored.appended[0].base_offset, stored.range.start);
    /// # Ok(()) }
    /// ```
    pub async fn open_partition(&self, partition: &str, options: OpenOptions) -> Result<Partition, HandlerError> {
        let inner = self.topics.open_partition(partition.into(), options).await.into_result()?;
        Ok(Partition::from_ffi(inner, self.clone()))
    }

    /// Creates `topic` with `partitions` (0: non-partitioned).
    pub async fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), HandlerError> {
        self.topics.create_topic(topic.into(), partitions).await.into_result()
    }

    /// Deletes `topic` and its data. Open handles of its partitions answer
    /// NOT_FOUND from then on (until it is created again).
    pub async fn delete_topic(&self, topic: &str) -> Result<(), HandlerError> {
        self.topics.delete_topic(topic.into()).await.into_result()
    }

    /// The topics of `tenant/namespace`, with their partition counts.
    pub async fn list_topics(&self, namespace: &str) -> Result<Vec<(String, u32)>, HandlerError> {
        let topics = self.topics.list_topics(namespace.into()).await.into_result()?;
        Ok(topics.into_iter().map(|t| (t.name.into_string(), t.partitions)).collect())
    }

    /// The retention policies of `topic`: its own overrides and those in force.
    pub async fn topic_config(&self, topic: &str) -> Result<TopicConfig, HandlerError> {
        self.topics.topic_config(topic.into()).await.into_result()
    }

    /// Replaces the retention overrides of `topic` ([`UNSET`](crate::storage::UNSET) fields inherit).
    pub async fn set_topic_policies(&self, topic: &str, policies: TopicPolicies) -> Result<(), HandlerError> {
        self.topics.set_topic_policies(topic.into(), policies).await.into_result()
    }

    /// Raises the partition count of partitioned `topic` to `count`.
    pub async fn create_partitions(&self, topic: &str, count: u32) -> Result<(), HandlerError> {
        self.topics.create_partitions(topic.into(), count).await.into_result()
    }

    /// Creates namespace `tenant/ns` (and its tenant) if missing; topics can
    /// only be created in an existing namespace.
    pub async fn create_namespace(&self, namespace: &str) -> Result<(), HandlerError> {
        self.topics.create_namespace(namespace.into()).await.into_result()
    }

    /// The properties of `topic` (Pulsar's topic properties): strings a
    /// protocol keeps with a topic, such as its own per-topic settings.
    pub async fn topic_properties(&self, topic: &str) -> Result<Vec<(String, String)>, HandlerError> {
        let properties = self.topics.topic_properties(topic.into()).await.into_result()?;
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
        let properties = self.topics.update_topic_properties(topic.into(), changes).await.into_result()?;
        Ok(properties.into_iter().map(|Tuple2(k, v)| (k.into_string(), v.into_string())).collect())
    }
}

/// The conversion services: reading entries another protocol wrote
/// ([`crate::convert`]).
impl Host {
    /// Registers `converter` for the entries this handler writes with format
    /// tag `format`, so readers of other protocols can read them.
    pub fn register_converter(&self, format: u16, converter: impl crate::convert::Converter) {
        let boxed = crate::convert::FfiConverter_TO::from_value(
            crate::convert::Guarded(converter),
            abi_stable::sabi_trait::TD_Opaque,
        );
        self.conversion.register_converter(format, boxed);
    }

    /// Registers `fence`, which decides what readers of other protocols
    /// may see of each partition ([`crate::convert::ReadFence`]); served
    /// from 0.2.4, an older host answers [`ErrorKind::UNSUPPORTED`](crate::ErrorKind::UNSUPPORTED)
    /// (its readers see everything).
    pub fn register_read_fence(&self, fence: impl crate::convert::ReadFence) -> Result<(), HandlerError> {
        let boxed = crate::convert::FfiReadFence_TO::from_value(
            crate::convert::GuardedFence(fence),
            abi_stable::sabi_trait::TD_Opaque,
        );
        self.conversion.register_read_fence(boxed).into_result()
    }

    /// The messages of an entry written in `format` by another protocol,
    /// converted on the caller's thread: for small entries only; an entry
    /// read from storage goes through [`Partition::convert_entry`].
    pub fn decode_entry(&self, format: u16, payload: &[u8]) -> Result<Vec<crate::convert::Message>, HandlerError> {
        let messages = self.conversion.decode_entry(format, payload.into()).into_result()?;
        Ok(messages.into_iter().map(crate::convert::Message::from).collect())
    }

    /// [`decode_entry`](Self::decode_entry) on one of the host's blocking
    /// threads: a conversion decompresses (up to 256 MiB) and re-encodes,
    /// which must not hold up the connections a runtime worker serves. An
    /// entry read from a partition goes through [`Partition::convert_entry`],
    /// which also reassembles messages split over several entries.
    pub async fn convert_entry(
        &self,
        format: u16,
        payload: bytes::Bytes,
    ) -> Result<Vec<crate::convert::Message>, HandlerError> {
        let payload = crate::storage::FfiBytes::from_bytes(payload);
        let messages = self.conversion.decode_entry_async(format, payload).await.into_result()?;
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
        let encoded = self.conversion.encode_entry(format, messages, sequence).into_result()?;
        Ok(bytes::Bytes::from(encoded.into_vec()))
    }
}

/// The authentication services ([`crate::security`]).
impl Host {
    /// Whether authentication is on, and the SASL mechanisms and one-shot
    /// methods the host's providers accept. A host older than 0.2.2
    /// answers "off, nothing".
    pub fn authentication(&self) -> crate::AuthenticationInfo {
        self.inner.authentication()
    }

    /// The role that `data` proves under `method` (Pulsar's names:
    /// `token` takes a JWT), or an
    /// [`ErrorKind::AUTHENTICATION`] error whose message is safe to show the
    /// client.
    pub async fn authenticate(&self, method: &str, data: &[u8]) -> Result<String, HandlerError> {
        let role = self.inner.authenticate(method.into(), data.into()).await.into_result()?;
        Ok(role.into_string())
    }

    /// Whether the host authorizes (`authorizationEnabled`): when not,
    /// every [`authorize`](Self::authorize) answers yes and a handler may
    /// skip asking.
    pub fn authorization_enabled(&self) -> bool {
        self.inner.authorization_enabled()
    }

    /// Whether `role` (`None`: a client that proved none) may do
    /// `operation` on `topic` (a topic or a partition, named as Pulsar
    /// names them), or on every topic of a namespace when `topic` is
    /// `tenant/ns`. The host answers with Pulsar's model: super-users,
    /// tenant admins, and the namespace's and topic's grants
    /// ([`Operation::Admin`](crate::storage::Operation::Admin) is a
    /// tenant admin's right; [`Operation::Lookup`](crate::storage::Operation::Lookup)
    /// needs `produce` or `consume`).
    pub async fn authorize(
        &self,
        role: Option<&str>,
        operation: crate::storage::Operation,
        topic: &str,
    ) -> Result<bool, HandlerError> {
        self.inner.authorize(role.unwrap_or_default().into(), operation, topic.into()).await.into_result()
    }

    /// The SCRAM credentials of `users` (all users when empty), one
    /// result per user asked: [`ErrorKind::NOT_FOUND`] for a user without
    /// any. `role` must be a super-user when authorization is on
    /// ([`ErrorKind::NOT_AUTHORIZED`] for the whole call otherwise).
    pub async fn scram_users(
        &self,
        role: Option<&str>,
        users: Vec<String>,
    ) -> Result<Vec<Result<crate::security::ScramUser, HandlerError>>, HandlerError> {
        let users = users.into_iter().map(abi_stable::std_types::RString::from).collect();
        let results = self.inner.scram_users(role.unwrap_or_default().into(), users).await.into_result()?;
        Ok(results.into_iter().map(abi_stable::std_types::RResult::into_result).collect())
    }

    /// Applies SCRAM credential changes, one result per change, in order:
    /// [`ErrorKind::UNSUPPORTED`] for an unknown mechanism,
    /// [`ErrorKind::INVALID_ARGUMENT`] for an unacceptable credential
    /// (iterations out of 4096..=16384, an empty salt or user),
    /// [`ErrorKind::ALREADY_EXISTS`] for a second change of the same user
    /// and mechanism in one call, [`ErrorKind::NOT_FOUND`] for deleting
    /// what does not exist. `role` must be a super-user when authorization
    /// is on.
    pub async fn alter_scram(
        &self,
        role: Option<&str>,
        changes: Vec<crate::security::ScramChange>,
    ) -> Result<Vec<Result<(), HandlerError>>, HandlerError> {
        let results = self.inner.alter_scram(role.unwrap_or_default().into(), changes.into()).await.into_result()?;
        Ok(results.into_iter().map(abi_stable::std_types::RResult::into_result).collect())
    }

    /// Every grant of `namespace` (`tenant/ns`): the namespace's own and
    /// its topics'. `role` must administer the tenant
    /// ([`ErrorKind::NOT_AUTHORIZED`] otherwise); a missing namespace is
    /// [`ErrorKind::NOT_FOUND`].
    pub async fn grants(
        &self,
        role: Option<&str>,
        namespace: &str,
    ) -> Result<Vec<crate::security::Grant>, HandlerError> {
        let grants = self.inner.grants(role.unwrap_or_default().into(), namespace.into()).await.into_result()?;
        Ok(grants.into_vec())
    }

    /// Sets (or, with no actions, revokes) a grant; `role` must administer
    /// the resource's tenant. Unknown actions are
    /// [`ErrorKind::INVALID_ARGUMENT`].
    pub async fn set_grant(&self, role: Option<&str>, grant: crate::security::Grant) -> Result<(), HandlerError> {
        self.inner.set_grant(role.unwrap_or_default().into(), grant).await.into_result()
    }

    /// Starts a SASL exchange with `mechanism` (one of
    /// [`AuthenticationInfo::sasl_mechanisms`](crate::AuthenticationInfo::sasl_mechanisms)),
    /// which the host runs with its providers: the handler carries the
    /// client's messages to [`SaslServer::step`](crate::SaslServer::step)
    /// and the answers back.
    pub fn sasl_server(&self, mechanism: &str) -> Result<crate::SaslServer, HandlerError> {
        let inner = self.inner.sasl_server(mechanism.into()).into_result()?;
        Ok(crate::SaslServer::new(inner, mechanism.to_owned()))
    }

    /// Declares a metric that the host exports with its own on `/metrics`
    /// ([`metrics`](crate::metrics)). Declaring a name again with the same
    /// kind and labels gives the same metric; another kind or other labels
    /// is refused ([`ErrorKind::INVALID`](crate::ErrorKind::INVALID_ARGUMENT)), as
    /// is a host without the service ([`ErrorKind::UNSUPPORTED`]); keep
    /// [`Metric::disabled`](crate::Metric::disabled) then.
    pub fn metric(&self, spec: crate::MetricSpec) -> Result<crate::Metric, HandlerError> {
        self.inner.metric(spec).into_result().map(crate::Metric::from_ffi)
    }

    /// Declares a gauge whose series `collect` computes when the host is
    /// scraped (at most a few seconds each: a collector that takes longer
    /// is skipped for that scrape and the host logs it).
    pub fn register_collector<F, Fut>(&self, spec: crate::MetricSpec, collect: F) -> Result<(), HandlerError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<crate::Sample>> + Send + 'static,
    {
        let collector = crate::metrics::FfiCollector_TO::from_value(
            crate::metrics::ClosureCollector(collect),
            abi_stable::sabi_trait::TD_Opaque,
        );
        self.inner.collector(spec, collector).into_result()
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
