//! Authorization of Kafka requests: the host decides, with Pulsar's model
//! (super-users, tenant admins, namespace and topic grants;
//! [`Host::authorize`]); this module asks it the questions Kafka's APIs
//! raise and remembers the answers for the rest of the request.
//!
//! - With `authorizationEnabled=false` (the default) nothing is asked: the
//!   host's answer to [`Host::authorization_enabled`] is read once, at
//!   start, and no [`Authorizer`] is set ([`Shared::authorizer`]).
//! - A topic is asked about by its Pulsar name (`persistent://t/ns/x`), once
//!   per request and operation ([`Memo`]), however many partitions the
//!   request names. An error of the host counts as "no" (logged at warn).
//! - A consumer group's operations need [`Operation::Consume`] on the
//!   session's group namespace ([`group_namespace`]).
//! - Group ids are per namespace while authorization is on: the group a
//!   client names `g` is the coordinator's group `<group namespace>/g`
//!   ([`RequestContext::group_key`]; the namespace has exactly one `/`, so
//!   the split is unambiguous), so two tenants using the same group id get
//!   two groups, and one cannot join, describe, list, commit to or delete
//!   the other's. Every group API maps the ids it sends to the coordinator
//!   (FindCoordinator too, before it hashes the id to a coordinator
//!   partition, so that it names the coordinator the group APIs reach), and
//!   answers with the client's ids ([`RequestContext::client_group_id`]:
//!   ListGroups lists only the session's namespace). With authorization off
//!   ids are used as sent, as before. Gap: groups created while
//!   authorization was off keep their unscoped ids and are not visible to
//!   scoped sessions (turning authorization on starts groups afresh;
//!   committed offsets of old groups are not migrated), and an unscoped id
//!   that happens to read `tenant/ns/g` becomes group `g` of `tenant/ns`.
//!   The mirrored cursors ([`crate::coordinator::mirror`]) are named after
//!   the scoped id.
//! - Each refusal is logged at info once per request, with the API, the
//!   role (or `anonymous`), the topic or group and the operation; never a
//!   credential. Topics left out of a listing (Metadata, OffsetFetch) are
//!   not refusals and are not logged.
//!
//! [`Shared::authorizer`]: crate::connection::Shared::authorizer

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    future::Future,
    pin::Pin,
    sync::{Mutex, MutexGuard, PoisonError},
};

use kafka_protocol::messages::ApiKey;
use polyport_handler_api::{storage::Operation, HandlerError, Host};

use crate::{apis::RequestContext, session::Session, topics::valid_name_segment};

/// Answers "may this role do that": the host's authorization service, or a
/// test's stand-in.
pub trait Authorizer: Send + Sync + std::fmt::Debug {
    /// Whether `role` (`None`: anonymous) may do `operation` on `resource`
    /// (a Pulsar topic, or a namespace `tenant/ns` for the whole namespace).
    fn authorize<'a>(
        &'a self,
        role: Option<&'a str>,
        operation: Operation,
        resource: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, HandlerError>> + Send + 'a>>;
}

impl Authorizer for Host {
    fn authorize<'a>(
        &'a self,
        role: Option<&'a str>,
        operation: Operation,
        resource: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, HandlerError>> + Send + 'a>> {
        Box::pin(Host::authorize(self, role, operation, resource))
    }
}

/// One request's answers, so that a request naming a topic in many
/// partitions (or many groups of one namespace) asks once, and logs a
/// refusal once.
#[derive(Debug, Default)]
pub struct Memo {
    /// (operation, resource) → allowed.
    answers: Mutex<HashMap<(u8, String), bool>>,
    /// The refusals logged: (operation, topic or `group:<id>`).
    logged: Mutex<HashSet<(u8, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The namespace whose `consume` grant a session's consumer groups need:
/// the SASL user name when it is a namespace (`tenant/ns`); with a tenant
/// alone (`tenant`), that tenant's namespace named like the default one
/// (the namespace part of `kafkaTenant/kafkaNamespace`); otherwise (no user
/// name, or one that names neither) the default namespace `default`.
pub fn group_namespace(session: &Session, default: &str) -> String {
    let default_ns = default.split_once('/').map_or(default, |(_, ns)| ns);
    let Some(username) = session.username.as_deref() else { return default.to_owned() };
    match username.split_once('/') {
        Some((tenant, ns)) if valid_name_segment(tenant) && valid_name_segment(ns) => username.to_owned(),
        None if valid_name_segment(username) => format!("{username}/{default_ns}"),
        _ => default.to_owned(),
    }
}

/// The bit of an operation in [`Memo`]'s keys.
fn code(operation: Operation) -> u8 {
    operation as u8
}

impl RequestContext<'_> {
    /// Whether this broker authorizes requests (`authorizationEnabled`, as
    /// the host answered at start).
    pub fn authorizing(&self) -> bool {
        self.shared.authorizer.get().is_some()
    }

    /// The role, as logs show it.
    fn role_shown(&self) -> &str {
        self.session.role.as_deref().unwrap_or("anonymous")
    }

    fn api(&self) -> Option<ApiKey> {
        ApiKey::try_from(self.header.request_api_key).ok()
    }

    /// The host's answer for (`operation`, `resource`), asked once per
    /// request; `true` when nothing authorizes.
    async fn answer(&self, operation: Operation, resource: &str) -> bool {
        let Some(authorizer) = self.shared.authorizer.get() else { return true };
        let key = (code(operation), resource.to_owned());
        if let Some(known) = lock(&self.authz.answers).get(&key) {
            return *known;
        }
        let allowed = match authorizer.authorize(self.session.role.as_deref(), operation, resource).await {
            Ok(allowed) => allowed,
            Err(e) => {
                tracing::warn!(api = ?self.api(), topic = resource, operation = ?operation, error = %e,
                    "authorization could not be checked; the request is refused");
                false
            }
        };
        lock(&self.authz.answers).insert(key, allowed);
        allowed
    }

    /// Whether this is the first time this request logs the refusal of
    /// `operation` on `what`.
    fn first_refusal(&self, operation: Operation, what: String) -> bool {
        lock(&self.authz.logged).insert((code(operation), what))
    }

    /// Whether the session's role may do `operation` on `topic` (a Pulsar
    /// topic, or `tenant/ns` for a whole namespace): `true` without a host
    /// or with authorization off. A refusal is logged at info, once per
    /// request.
    pub async fn allowed(&self, operation: Operation, topic: &str) -> bool {
        let allowed = self.answer(operation, topic).await;
        if !allowed && self.first_refusal(operation, topic.to_owned()) {
            tracing::info!(api = ?self.api(), role = self.role_shown(), topic, operation = ?operation, "not authorized");
        }
        allowed
    }

    /// [`allowed`](Self::allowed) without the log: for what a listing
    /// leaves out, which the client did not ask for by name.
    pub async fn permitted(&self, operation: Operation, topic: &str) -> bool {
        self.answer(operation, topic).await
    }

    /// Whether Kafka topic `kafka` is refused `operation`: `false` when
    /// nothing authorizes, or when the name is invalid (whose error the
    /// request answers anyway).
    pub async fn topic_denied(&self, operation: Operation, kafka: &str) -> bool {
        if !self.authorizing() {
            return false;
        }
        match self.shared.topics.pulsar(kafka) {
            Ok(pulsar) => !self.allowed(operation, &pulsar).await,
            Err(_) => false,
        }
    }

    /// The namespace whose grants this session's consumer groups need
    /// ([`group_namespace`]).
    pub fn group_namespace(&self) -> String {
        group_namespace(self.session, self.shared.topics.namespace())
    }

    /// The coordinator's id of the group the client names `group`: scoped
    /// by the session's group namespace (`<tenant>/<ns>/<group>`) while
    /// authorization is on, `group` itself otherwise. Every group id sent to
    /// the coordinator (or hashed to a coordinator partition) goes through
    /// this.
    pub fn group_key<'g>(&self, group: &'g str) -> Cow<'g, str> {
        if self.authorizing() {
            Cow::Owned(format!("{}/{group}", self.group_namespace()))
        } else {
            Cow::Borrowed(group)
        }
    }

    /// The id the client knows the coordinator's group `key` by: the
    /// inverse of [`group_key`](Self::group_key), `None` when `key` is not a
    /// group of the session's namespace (another namespace's, or one created
    /// while authorization was off).
    pub fn client_group_id<'g>(&self, key: &'g str) -> Option<&'g str> {
        if !self.authorizing() {
            return Some(key);
        }
        key.strip_prefix(self.group_namespace().as_str()).and_then(|rest| rest.strip_prefix('/'))
    }

    /// Whether the session may use consumer group `group`: `consume` on its
    /// group namespace. A refusal is logged at info, once per request and group.
    pub async fn allowed_group(&self, group: &str) -> bool {
        if !self.authorizing() {
            return true;
        }
        let namespace = self.group_namespace();
        let allowed = self.answer(Operation::Consume, &namespace).await;
        if !allowed && self.first_refusal(Operation::Consume, format!("group:{group}")) {
            tracing::info!(api = ?self.api(), role = self.role_shown(), group, namespace = %namespace,
                operation = ?Operation::Consume, "not authorized");
        }
        allowed
    }

    /// [`allowed_group`](Self::allowed_group) for every group of the
    /// session's namespace at once (ListGroups), without the log.
    pub async fn permitted_groups(&self) -> bool {
        if !self.authorizing() {
            return true;
        }
        let namespace = self.group_namespace();
        self.answer(Operation::Consume, &namespace).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use super::*;

    /// Grants as a host would hold them: (role, operation, resource), with
    /// `resource` a Pulsar topic or a namespace; `fail` answers an error
    /// for that resource. Counts the questions asked.
    #[derive(Debug, Default)]
    pub(crate) struct Grants {
        pub(crate) grants: Vec<(&'static str, Operation, &'static str)>,
        pub(crate) fail: Option<&'static str>,
        pub(crate) asked: AtomicUsize,
    }

    impl Authorizer for Grants {
        fn authorize<'a>(
            &'a self,
            role: Option<&'a str>,
            operation: Operation,
            resource: &'a str,
        ) -> Pin<Box<dyn Future<Output = Result<bool, HandlerError>> + Send + 'a>> {
            self.asked.fetch_add(1, Ordering::Relaxed);
            let answer = if self.fail == Some(resource) {
                Err(HandlerError::new(polyport_handler_api::ErrorKind::STORAGE, "store unavailable"))
            } else {
                // A grant on a namespace covers its topics.
                let covers = |granted: &str| {
                    granted == resource
                        || resource
                            .strip_prefix("persistent://")
                            .is_some_and(|t| t.strip_prefix(granted).is_some_and(|rest| rest.starts_with('/')))
                };
                let granted =
                    |op: Operation| self.grants.iter().any(|(r, o, res)| Some(*r) == role && *o == op && covers(res));
                Ok(match operation {
                    // As the host: looking up needs either right; a tenant admin may do all.
                    Operation::Lookup => {
                        granted(Operation::Produce) || granted(Operation::Consume) || granted(Operation::Admin)
                    }
                    op => granted(op) || granted(Operation::Admin),
                })
            };
            Box::pin(std::future::ready(answer))
        }
    }

    pub(crate) fn shared_with(grants: Arc<Grants>) -> crate::connection::Shared {
        let shared = crate::connection::Shared::for_tests();
        shared.authorizer.set(grants).expect("unset");
        shared
    }

    fn sasl(username: &str) -> Session {
        Session::from_sasl("alice".into(), username.into())
    }

    #[test]
    fn a_sessions_groups_live_in_its_namespace() {
        let default = "public/default";
        assert_eq!(group_namespace(&sasl("acme/orders"), default), "acme/orders");
        assert_eq!(group_namespace(&sasl("acme"), default), "acme/default");
        assert_eq!(group_namespace(&sasl("acme"), "kafka/events"), "acme/events");
        for other in ["", "a/b/c", "/ns", "acme/", "bad name", "..", "a/.."] {
            assert_eq!(group_namespace(&sasl(other), default), default, "{other:?}");
        }
        assert_eq!(group_namespace(&Session::anonymous(), default), default);
        assert_eq!(group_namespace(&Session::from_tls(Some("cn".into())), "t/ns"), "t/ns");
    }

    fn header() -> kafka_protocol::messages::RequestHeader {
        kafka_protocol::messages::RequestHeader::default().with_request_api_key(ApiKey::Produce as i16)
    }

    fn listener() -> crate::listeners::KafkaListener {
        crate::listeners::KafkaListener {
            name: "PLAINTEXT".into(),
            bind: "0.0.0.0:9092".into(),
            advertised_host: "h".into(),
            advertised_port: 9092,
            security: crate::listeners::SecurityProtocol::Plaintext,
        }
    }

    #[tokio::test]
    async fn answers_are_asked_once_per_request_and_errors_refuse() {
        let grants = Arc::new(Grants {
            grants: vec![("alice", Operation::Produce, "persistent://public/default/a")],
            fail: Some("persistent://public/default/broken"),
            ..Grants::default()
        });
        let shared = shared_with(Arc::clone(&grants));
        let (header, listener) = (header(), listener());
        let session = sasl("public/default");
        let ctx = RequestContext {
            header: &header,
            version: 9,
            listener: &listener,
            client_host: "/127.0.0.1",
            shared: &shared,
            session: &session,
            authz: Memo::default(),
        };
        assert!(ctx.authorizing());
        for _ in 0..3 {
            assert!(ctx.allowed(Operation::Produce, "persistent://public/default/a").await);
            assert!(!ctx.allowed(Operation::Consume, "persistent://public/default/a").await);
            assert!(!ctx.topic_denied(Operation::Lookup, "a").await);
            assert!(ctx.topic_denied(Operation::Produce, "b").await);
            assert!(!ctx.allowed(Operation::Produce, "persistent://public/default/broken").await);
        }
        assert!(!ctx.topic_denied(Operation::Produce, "bad name").await, "left to the name's own error");
        assert_eq!(grants.asked.load(Ordering::Relaxed), 5, "once per (operation, topic)");
        assert!(!ctx.allowed_group("g1").await);
        assert!(!ctx.allowed_group("g2").await);
        assert!(!ctx.permitted_groups().await);
        assert_eq!(grants.asked.load(Ordering::Relaxed), 6, "one namespace for every group");
        // Group ids are scoped by the session's group namespace, and back.
        assert_eq!(ctx.group_key("g"), "public/default/g");
        assert_eq!(ctx.group_key("a/b"), "public/default/a/b");
        assert_eq!(ctx.client_group_id("public/default/g"), Some("g"));
        assert_eq!(ctx.client_group_id("public/default/a/b"), Some("a/b"));
        for other in ["g", "public/defaultx/g", "public/g", "acme/default/g", "public/default"] {
            assert_eq!(ctx.client_group_id(other), None, "{other:?}");
        }
    }

    #[tokio::test]
    async fn nothing_is_asked_when_authorization_is_off() {
        let shared = crate::connection::Shared::for_tests();
        let (header, listener, session) = (header(), listener(), Session::anonymous());
        let ctx = RequestContext {
            header: &header,
            version: 9,
            listener: &listener,
            client_host: "/127.0.0.1",
            shared: &shared,
            session: &session,
            authz: Memo::default(),
        };
        assert!(!ctx.authorizing());
        assert!(ctx.allowed(Operation::Admin, "persistent://t/ns/x").await);
        assert!(!ctx.topic_denied(Operation::Admin, "x").await);
        assert!(ctx.allowed_group("g").await);
        assert!(ctx.permitted_groups().await);
        assert!(lock(&ctx.authz.answers).is_empty());
        // Group ids go to the coordinator as sent.
        assert!(matches!(ctx.group_key("public/default/g"), Cow::Borrowed("public/default/g")));
        assert_eq!(ctx.client_group_id("public/default/g"), Some("public/default/g"));
        assert_eq!(ctx.client_group_id("g"), Some("g"));
    }

    /// Requests through `dispatch` as `session`, against the in-memory host,
    /// authorized by [`Grants`].
    mod requests {
        use bytes::{Bytes, BytesMut};
        use futures_util::FutureExt as _;
        use kafka_protocol::{
            messages::*,
            protocol::{Decodable, Encodable, HeaderVersion, StrBytes},
            records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType},
        };
        use polyport_handler_api::{testing::MemoryHost, ErrorKind};

        use super::*;
        use crate::{connection::Shared, errors, order::Sequencer};

        const A: &str = "persistent://public/default/a";
        const X: &str = "persistent://public/default/x";
        const Y: &str = "persistent://public/default/y";

        fn s(v: &str) -> StrBytes {
            StrBytes::from_string(v.to_owned())
        }

        fn name(v: &str) -> TopicName {
            TopicName(s(v))
        }

        fn batch() -> Bytes {
            let record = Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence: -1,
                timestamp: 1,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
            };
            let mut out = BytesMut::new();
            let options = RecordEncodeOptions { version: 2, compression: Compression::None };
            RecordBatchEncoder::encode(&mut out, [&record], &options).expect("encodes");
            out.freeze()
        }

        /// A handler's shared state on `memory`, authorized by `grants`,
        /// with topics x and y (2 partitions each) and the group coordinator running.
        async fn setup(memory: &MemoryHost, grants: Vec<(&'static str, Operation, &'static str)>) -> Arc<Shared> {
            let grants = Arc::new(Grants { grants, ..Grants::default() });
            let mut shared = shared_with(grants);
            // No initial rebalance delay: a lone JoinGroup is answered at once.
            let config = shared.coordinator.config().clone();
            shared.coordinator = crate::coordinator::Coordinator::new(crate::coordinator::CoordinatorConfig {
                group: crate::coordinator::GroupConfig { initial_rebalance_delay_ms: 0, ..config.group.clone() },
                ..config
            });
            let host = memory.host();
            for topic in [X, Y] {
                host.create_topic(topic, 2).await.expect("create");
            }
            shared.coordinator.start(
                &host,
                "public/default",
                std::sync::Arc::clone(&shared.txn_index),
                std::sync::Arc::clone(&shared.sequences),
            );
            shared.host.set(host).expect("unset");
            Arc::new(shared)
        }

        fn user(role: &str, username: &str) -> Session {
            Session::from_sasl(role.into(), username.into())
        }

        async fn send<Req: Encodable + HeaderVersion, Resp: Decodable>(
            shared: &Arc<Shared>,
            session: &Session,
            key: ApiKey,
            version: i16,
            body: &Req,
        ) -> Resp {
            let mut turns = Sequencer::default();
            let turn = turns.take_turn();
            let mut next = turns.take_turn();
            let frame = crate::apis::frames::request(key, version, body);
            let out = crate::apis::dispatch(
                key,
                version,
                frame,
                Arc::clone(shared),
                Arc::new(listener()),
                "/127.0.0.1".into(),
                Arc::new(session.clone()),
                (key == ApiKey::Produce).then_some(turn),
            )
            .await
            .expect("dispatch")
            .expect("a response");
            // Every request passes its turn, refused or not.
            assert!(next.wait().now_or_never().is_some(), "{key:?}: the turn was passed");
            crate::apis::frames::response(&out, key, version)
        }

        #[tokio::test]
        async fn produce_and_fetch_need_their_grants_per_topic() {
            let memory = MemoryHost::new();
            let shared = setup(
                &memory,
                vec![
                    ("alice", Operation::Produce, A),
                    ("alice", Operation::Consume, A),
                    ("alice", Operation::Consume, X),
                ],
            )
            .await;
            let alice = user("alice", "public/default");
            let data =
                |index| produce_request::PartitionProduceData::default().with_index(index).with_records(Some(batch()));
            let produce = ProduceRequest::default().with_acks(1).with_timeout_ms(1000).with_topic_data(vec![
                produce_request::TopicProduceData::default().with_name(name("a")).with_partition_data(vec![data(0)]),
                produce_request::TopicProduceData::default()
                    .with_name(name("b"))
                    .with_partition_data(vec![data(0), data(1)]),
                produce_request::TopicProduceData::default().with_name(name("x")).with_partition_data(vec![data(1)]),
            ]);
            let r: ProduceResponse = send(&shared, &alice, ApiKey::Produce, 9, &produce).await;
            let codes: Vec<Vec<(i32, i16)>> = r
                .responses
                .iter()
                .map(|t| t.partition_responses.iter().map(|p| (p.index, p.error_code)).collect())
                .collect();
            let denied = errors::TOPIC_AUTHORIZATION_FAILED;
            assert_eq!(codes, [vec![(0, 0)], vec![(0, denied), (1, denied)], vec![(1, denied)]]);
            assert_eq!(r.responses[0].partition_responses[0].base_offset, 0);
            // A refused topic is not auto-created, nor appended to.
            let host = memory.host();
            let missing = host.partitioned_metadata("persistent://public/default/b", false).await;
            assert_eq!(missing.map(|_| ()).expect_err("not created").kind(), ErrorKind::NOT_FOUND);
            let x1 = host.open_partition(&format!("{X}-partition-1"), Default::default()).await.expect("open");
            assert_eq!(x1.range().await.expect("range").end, 0);

            let partition = |index| {
                fetch_request::FetchPartition::default().with_partition(index).with_partition_max_bytes(1 << 20)
            };
            let fetch =
                FetchRequest::default().with_max_wait_ms(0).with_min_bytes(1).with_max_bytes(1 << 20).with_topics(
                    vec![
                        fetch_request::FetchTopic::default().with_topic(name("a")).with_partitions(vec![partition(0)]),
                        fetch_request::FetchTopic::default()
                            .with_topic(name("y"))
                            .with_partitions(vec![partition(0), partition(1)]),
                    ],
                );
            let r: FetchResponse = send(&shared, &alice, ApiKey::Fetch, 4, &fetch).await;
            let a = &r.responses[0].partitions[0];
            assert_eq!((a.error_code, a.high_watermark), (0, 1));
            assert!(a.records.as_ref().is_some_and(|r| !r.is_empty()));
            for p in &r.responses[1].partitions {
                assert_eq!(p.error_code, denied);
                assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
            }

            // ListOffsets asks lookup: produce or consume.
            let list = ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default().with_name(name("x")).with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1),
                ]),
                list_offsets_request::ListOffsetsTopic::default().with_name(name("y")).with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1),
                ]),
            ]);
            let r: ListOffsetsResponse = send(&shared, &alice, ApiKey::ListOffsets, 7, &list).await;
            let codes: Vec<i16> = r.topics.iter().map(|t| t.partitions[0].error_code).collect();
            assert_eq!(codes, [0, denied]);
        }

        #[tokio::test]
        async fn metadata_hides_and_refuses_what_the_role_may_not_look_up() {
            let memory = MemoryHost::new();
            let shared =
                setup(&memory, vec![("alice", Operation::Consume, X), ("bob", Operation::Produce, "public/default")])
                    .await;
            let alice = user("alice", "public/default");
            let all = MetadataRequest::default().with_topics(None);
            let r: MetadataResponse = send(&shared, &alice, ApiKey::Metadata, 12, &all).await;
            let listed: Vec<&str> = r.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.as_str())).collect();
            assert_eq!(listed, ["x"]);
            let r: MetadataResponse = send(&shared, &user("bob", "public/default"), ApiKey::Metadata, 12, &all).await;
            assert_eq!(r.topics.len(), 2, "a namespace grant lists every topic");

            let named = MetadataRequest::default()
                .with_topics(Some(
                    ["x", "y", "z"]
                        .into_iter()
                        .map(|n| metadata_request::MetadataRequestTopic::default().with_name(Some(name(n))))
                        .collect(),
                ))
                .with_allow_auto_topic_creation(true)
                .with_include_topic_authorized_operations(true)
                .with_include_cluster_authorized_operations(true);
            let r: MetadataResponse = send(&shared, &alice, ApiKey::Metadata, 10, &named).await;
            let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
            let denied = errors::TOPIC_AUTHORIZATION_FAILED;
            assert_eq!(codes, [0, denied, denied]);
            assert_eq!(r.topics[0].partitions.len(), 2);
            // READ, DESCRIBE, DESCRIBE_CONFIGS: no WRITE without produce.
            assert_eq!(r.topics[0].topic_authorized_operations, (1 << 3) | (1 << 8) | (1 << 10));
            assert_eq!(r.topics[1].topic_authorized_operations, crate::apis::authorized::NOT_PROVIDED);
            // DESCRIBE, DESCRIBE_CONFIGS, IDEMPOTENT_WRITE.
            assert_eq!(r.cluster_authorized_operations, (1 << 8) | (1 << 10) | (1 << 12));
            let missing = memory.host().partitioned_metadata("persistent://public/default/z", false).await;
            assert!(missing.is_err(), "a refused topic is not auto-created");
        }

        #[tokio::test]
        async fn topic_and_broker_administration_needs_admin() {
            let memory = MemoryHost::new();
            let shared = setup(
                &memory,
                vec![
                    ("alice", Operation::Consume, X),
                    ("alice", Operation::Produce, Y),
                    ("root", Operation::Admin, "public/default"),
                ],
            )
            .await;
            let (alice, root) = (user("alice", "public/default"), user("root", "public/default"));
            let denied = errors::TOPIC_AUTHORIZATION_FAILED;
            let create =
                CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(name("n"))
                    .with_num_partitions(1)
                    .with_replication_factor(1)]);
            let r: CreateTopicsResponse = send(&shared, &alice, ApiKey::CreateTopics, 7, &create).await;
            assert_eq!(r.topics[0].error_code, denied);
            assert!(memory.host().partitioned_metadata("persistent://public/default/n", false).await.is_err());
            let r: CreateTopicsResponse = send(&shared, &root, ApiKey::CreateTopics, 7, &create).await;
            assert_eq!(r.topics[0].error_code, 0);

            let delete = DeleteTopicsRequest::default().with_topic_names(vec![name("n")]);
            let r: DeleteTopicsResponse = send(&shared, &alice, ApiKey::DeleteTopics, 5, &delete).await;
            assert_eq!(r.responses[0].error_code, denied);

            let grow = CreatePartitionsRequest::default().with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default().with_name(name("x")).with_count(3),
            ]);
            let r: CreatePartitionsResponse = send(&shared, &alice, ApiKey::CreatePartitions, 3, &grow).await;
            assert_eq!(r.results[0].error_code, denied);

            let records =
                DeleteRecordsRequest::default().with_topics(vec![delete_records_request::DeleteRecordsTopic::default(
                )
                .with_name(name("x"))
                .with_partitions(vec![delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(-1)])]);
            let r: DeleteRecordsResponse = send(&shared, &alice, ApiKey::DeleteRecords, 2, &records).await;
            assert_eq!(r.topics[0].partitions[0].error_code, denied);

            let alter = |resource_type: i8, resource: &str| {
                IncrementalAlterConfigsRequest::default().with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(s(resource))
                        .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(s("1000")))]),
                ])
            };
            let r: IncrementalAlterConfigsResponse =
                send(&shared, &alice, ApiKey::IncrementalAlterConfigs, 1, &alter(2, "x")).await;
            assert_eq!(r.responses[0].error_code, denied);
            let r: IncrementalAlterConfigsResponse =
                send(&shared, &root, ApiKey::IncrementalAlterConfigs, 1, &alter(2, "x")).await;
            assert_eq!(r.responses[0].error_code, 0);
            let r: IncrementalAlterConfigsResponse =
                send(&shared, &alice, ApiKey::IncrementalAlterConfigs, 1, &alter(4, "0")).await;
            assert_eq!(r.responses[0].error_code, errors::CLUSTER_AUTHORIZATION_FAILED);
            let r: IncrementalAlterConfigsResponse =
                send(&shared, &root, ApiKey::IncrementalAlterConfigs, 1, &alter(4, "0")).await;
            assert_eq!(r.responses[0].error_code, errors::INVALID_REQUEST, "read-only, but allowed to ask");

            let describe = DescribeConfigsRequest::default().with_resources(
                [(2, "x"), (2, "y"), (2, "n"), (4, "0")]
                    .into_iter()
                    .map(|(t, n)| {
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(t)
                            .with_resource_name(s(n))
                    })
                    .collect(),
            );
            let r: DescribeConfigsResponse = send(&shared, &alice, ApiKey::DescribeConfigs, 4, &describe).await;
            let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
            assert_eq!(codes, [0, 0, denied, 0]);
        }

        #[tokio::test]
        async fn groups_need_consume_on_the_sessions_namespace() {
            let memory = MemoryHost::new();
            let shared = setup(
                &memory,
                vec![
                    ("carol", Operation::Consume, "acme/default"),
                    ("carol", Operation::Consume, X),
                    ("dave", Operation::Consume, "acme/default"),
                    ("dave", Operation::Consume, Y),
                ],
            )
            .await;
            let group = || GroupId(s("g"));
            // alice's groups live in acme/default, where she has no grant.
            let alice = user("alice", "acme");
            let denied = errors::GROUP_AUTHORIZATION_FAILED;
            let find = FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![s("g")]);
            let r: FindCoordinatorResponse = send(&shared, &alice, ApiKey::FindCoordinator, 4, &find).await;
            assert_eq!(r.coordinators[0].error_code, denied);
            let join = JoinGroupRequest::default()
                .with_group_id(group())
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(s("consumer"));
            let r: JoinGroupResponse = send(&shared, &alice, ApiKey::JoinGroup, 9, &join).await;
            assert_eq!(r.error_code, denied);
            let beat = HeartbeatRequest::default().with_group_id(group()).with_member_id(s("m"));
            let r: HeartbeatResponse = send(&shared, &alice, ApiKey::Heartbeat, 4, &beat).await;
            assert_eq!(r.error_code, denied);
            let describe = DescribeGroupsRequest::default().with_groups(vec![group(), GroupId(s("h"))]);
            let r: DescribeGroupsResponse = send(&shared, &alice, ApiKey::DescribeGroups, 5, &describe).await;
            assert_eq!(r.groups.iter().map(|g| g.error_code).collect::<Vec<_>>(), [denied, denied]);
            let r: DeleteGroupsResponse = send(
                &shared,
                &alice,
                ApiKey::DeleteGroups,
                2,
                &DeleteGroupsRequest::default().with_groups_names(vec![group()]),
            )
            .await;
            assert_eq!(r.results[0].error_code, denied);

            let commit = |topic: &str| {
                offset_commit_request::OffsetCommitRequestTopic::default().with_name(name(topic)).with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(0),
                ])
            };
            let request = OffsetCommitRequest::default()
                .with_group_id(group())
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![commit("x"), commit("y")]);
            let r: OffsetCommitResponse = send(&shared, &alice, ApiKey::OffsetCommit, 8, &request).await;
            let codes: Vec<i16> = r.topics.iter().map(|t| t.partitions[0].error_code).collect();
            assert_eq!(codes, [denied, denied]);
            // carol may use the group and read x, not y.
            let carol = user("carol", "acme");
            let r: OffsetCommitResponse = send(&shared, &carol, ApiKey::OffsetCommit, 8, &request).await;
            let codes: Vec<i16> = r.topics.iter().map(|t| t.partitions[0].error_code).collect();
            assert_eq!(codes, [0, errors::TOPIC_AUTHORIZATION_FAILED]);

            let fetch = |topics: Option<Vec<&str>>| {
                OffsetFetchRequest::default().with_group_id(group()).with_topics(topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| {
                            offset_fetch_request::OffsetFetchRequestTopic::default()
                                .with_name(name(t))
                                .with_partition_indexes(vec![0])
                        })
                        .collect()
                }))
            };
            let r: OffsetFetchResponse = send(&shared, &alice, ApiKey::OffsetFetch, 7, &fetch(None)).await;
            assert_eq!(r.error_code, denied);
            let r: OffsetFetchResponse = send(&shared, &alice, ApiKey::OffsetFetch, 1, &fetch(Some(vec!["x"]))).await;
            assert_eq!(r.topics[0].partitions[0].error_code, denied, "v1: on each partition");
            let r: OffsetFetchResponse =
                send(&shared, &carol, ApiKey::OffsetFetch, 7, &fetch(Some(vec!["x", "y"]))).await;
            let answers: Vec<(i16, i64)> =
                r.topics.iter().map(|t| (t.partitions[0].error_code, t.partitions[0].committed_offset)).collect();
            assert_eq!(answers, [(0, 0), (errors::TOPIC_AUTHORIZATION_FAILED, -1)]);
            // The group's offsets of y, committed by dave, are not listed to carol.
            let dave = user("dave", "acme/default");
            let r: OffsetCommitResponse = send(&shared, &dave, ApiKey::OffsetCommit, 8, &request).await;
            let codes: Vec<i16> = r.topics.iter().map(|t| t.partitions[0].error_code).collect();
            assert_eq!(codes, [errors::TOPIC_AUTHORIZATION_FAILED, 0]);
            let r: OffsetFetchResponse = send(&shared, &dave, ApiKey::OffsetFetch, 7, &fetch(None)).await;
            assert_eq!(r.topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["y"]);
            let r: OffsetFetchResponse = send(&shared, &carol, ApiKey::OffsetFetch, 7, &fetch(None)).await;
            assert_eq!(r.topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["x"]);

            let r: ListGroupsResponse =
                send(&shared, &alice, ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await;
            assert_eq!((r.error_code, r.groups.len()), (0, 0));
            let r: ListGroupsResponse =
                send(&shared, &carol, ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await;
            assert_eq!(r.groups.iter().map(|g| g.group_id.as_str()).collect::<Vec<_>>(), ["g"]);
        }
        #[tokio::test]
        async fn group_ids_are_per_namespace() {
            let memory = MemoryHost::new();
            let shared = setup(
                &memory,
                vec![
                    ("alice", Operation::Consume, "acme/default"),
                    ("alice", Operation::Consume, X),
                    ("bob", Operation::Consume, "other/orders"),
                    ("bob", Operation::Consume, X),
                ],
            )
            .await;
            // The same group ids, in two group namespaces.
            let (alice, bob) = (user("alice", "acme"), user("bob", "other/orders"));
            let group = |id: &str| GroupId(s(id));

            let find = FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![s("g")]);
            let r: FindCoordinatorResponse = send(&shared, &alice, ApiKey::FindCoordinator, 4, &find).await;
            assert_eq!((r.coordinators[0].key.as_str(), r.coordinators[0].error_code), ("g", 0), "the client's key");

            let join = JoinGroupRequest::default()
                .with_group_id(group("g"))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(Bytes::from_static(b"m"))]);
            let a: JoinGroupResponse = send(&shared, &alice, ApiKey::JoinGroup, 3, &join).await;
            assert_eq!(a.error_code, 0);
            assert_eq!((a.leader.as_str(), a.members.len()), (a.member_id.as_str(), 1));

            // bob's "g" is another group: empty, then his alone.
            let describe = DescribeGroupsRequest::default().with_groups(vec![group("g")]);
            let r: DescribeGroupsResponse = send(&shared, &bob, ApiKey::DescribeGroups, 5, &describe).await;
            let g = &r.groups[0];
            assert_eq!((g.group_id.as_str(), g.error_code, g.group_state.as_str()), ("g", 0, "Dead"));
            assert!(g.members.is_empty(), "alice's member is not shown to bob");
            let r: ListGroupsResponse = send(&shared, &bob, ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await;
            assert!(r.groups.is_empty(), "alice's group is not listed to bob");

            let b: JoinGroupResponse = send(&shared, &bob, ApiKey::JoinGroup, 3, &join).await;
            assert_eq!(b.error_code, 0);
            assert_eq!((b.leader.as_str(), b.members.len()), (b.member_id.as_str(), 1), "bob leads his own group");
            assert_eq!(b.generation_id, 1, "a new group, not a rebalance of alice's");
            for (session, member) in [(&alice, &a.member_id), (&bob, &b.member_id)] {
                let r: DescribeGroupsResponse = send(&shared, session, ApiKey::DescribeGroups, 5, &describe).await;
                let g = &r.groups[0];
                assert_eq!((g.group_id.as_str(), g.error_code), ("g", 0));
                let members: Vec<&str> = g.members.iter().map(|m| m.member_id.as_str()).collect();
                assert_eq!(members, [member.as_str()]);
            }
            let beat = HeartbeatRequest::default().with_group_id(group("g")).with_member_id(a.member_id.clone());
            let r: HeartbeatResponse =
                send(&shared, &bob, ApiKey::Heartbeat, 3, &beat.clone().with_generation_id(1)).await;
            assert_eq!(r.error_code, errors::UNKNOWN_MEMBER_ID, "alice's member is not in bob's group");

            // Offsets committed to alice's "h" are not bob's "h".
            let commit = OffsetCommitRequest::default()
                .with_group_id(group("h"))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(name("x"))
                    .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(5)])]);
            let r: OffsetCommitResponse = send(&shared, &alice, ApiKey::OffsetCommit, 8, &commit).await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0);
            let fetch = OffsetFetchRequest::default().with_group_id(group("h")).with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(name("x"))
                    .with_partition_indexes(vec![0]),
            ]));
            let r: OffsetFetchResponse = send(&shared, &bob, ApiKey::OffsetFetch, 7, &fetch).await;
            assert_eq!((r.error_code, r.topics[0].partitions[0].committed_offset), (0, -1));
            let r: OffsetFetchResponse = send(&shared, &alice, ApiKey::OffsetFetch, 7, &fetch).await;
            assert_eq!((r.error_code, r.topics[0].partitions[0].committed_offset), (0, 5));
            let all = OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(group("h")).with_topics(None),
            ]);
            let r: OffsetFetchResponse = send(&shared, &bob, ApiKey::OffsetFetch, 8, &all).await;
            assert_eq!((r.groups[0].group_id.as_str(), r.groups[0].topics.len()), ("h", 0));
            let r: OffsetFetchResponse = send(&shared, &alice, ApiKey::OffsetFetch, 8, &all).await;
            assert_eq!(r.groups[0].group_id.as_str(), "h", "the client's id");
            assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 5);

            // bob cannot delete alice's "h"; each lists only its own groups, by the client's ids.
            let delete = DeleteGroupsRequest::default().with_groups_names(vec![group("h")]);
            let r: DeleteGroupsResponse = send(&shared, &bob, ApiKey::DeleteGroups, 2, &delete).await;
            assert_eq!(r.results[0].group_id.as_str(), "h");
            assert_ne!(r.results[0].error_code, 0);
            let listed = |r: ListGroupsResponse| r.groups.iter().map(|g| g.group_id.to_string()).collect::<Vec<_>>();
            let r: ListGroupsResponse =
                send(&shared, &alice, ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await;
            assert_eq!(listed(r), ["g", "h"]);
            let r: ListGroupsResponse = send(&shared, &bob, ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await;
            assert_eq!(listed(r), ["g"]);
            let r: DeleteGroupsResponse = send(&shared, &alice, ApiKey::DeleteGroups, 2, &delete).await;
            assert_eq!((r.results[0].group_id.as_str(), r.results[0].error_code), ("h", 0));

            // In the coordinator, the groups are the scoped ids.
            let stored: Vec<String> =
                shared.coordinator.list().await.expect("list").into_iter().map(|l| l.group).collect();
            assert_eq!(stored, ["acme/default/g", "other/orders/g"]);
        }
    }
}
