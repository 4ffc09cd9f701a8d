//! The topic service ([`FfiTopics`]): topics and their metadata, and the
//! [`PartitionHandle`]s through which handlers append and read.

use std::{sync::Arc, time::Duration};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RResult, RStr, RString, RVec, Tuple2},
};
use async_ffi::FfiFuture;
use polyport_handler_api::{
    storage::{
        BrokerEntry, FfiPartitionBox, FfiPartition_TO, FfiTopics, OpenOptions, PartitionOwner, Properties,
        PropertyChanges, TopicConfig, TopicInfo, TopicLookup, TopicPolicies, UNSET,
    },
    ErrorKind, HandlerError,
};

use super::{
    errors::{parse, topic_error},
    on_runtime,
    partition::PartitionHandle,
};
use crate::{cluster::Route, topics::Topics};

/// The host side of [`FfiTopics`].
#[derive(Clone)]
pub(super) struct TopicService {
    runtime: tokio::runtime::Handle,
    topics: Arc<Topics>,
    advertised_address: String,
    converters: Arc<crate::convert::Converters>,
    meters: super::partition::Meters,
}

impl TopicService {
    pub(super) fn new(
        runtime: tokio::runtime::Handle,
        topics: Arc<Topics>,
        advertised_address: String,
        converters: Arc<crate::convert::Converters>,
        meters: super::partition::Meters,
    ) -> Self {
        Self { runtime, topics, advertised_address, converters, meters }
    }

    /// The same service for the handler of `protocol` (its cursors are marked so).
    pub(super) fn for_protocol(&self, protocol: &str) -> Self {
        let mut service = self.clone();
        service.meters.protocol = protocol.into();
        service
    }

    /// Runs `f` with this service's topics as an FFI future.
    fn run<T, F>(&self, f: impl FnOnce(Arc<Topics>) -> F) -> FfiFuture<RResult<T, HandlerError>>
    where
        F: std::future::Future<Output = Result<T, HandlerError>> + Send + 'static,
        T: Send + 'static,
    {
        on_runtime(&self.runtime, || f(Arc::clone(&self.topics)))
    }
}

/// What a broker registered, as the ABI carries it.
fn protocols(data: &crate::registry::BrokerData) -> RVec<Tuple2<RString, RString>> {
    data.protocols.iter().map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str()))).collect()
}

fn properties(map: impl IntoIterator<Item = (String, String)>) -> Properties {
    map.into_iter().map(|(k, v)| Tuple2(RString::from(k), RString::from(v))).collect()
}

impl FfiTopics for TopicService {
    fn lookup(&self, topic: RStr<'_>) -> FfiFuture<RResult<TopicLookup, HandlerError>> {
        let (topic, address) = (topic.as_str().to_owned(), self.advertised_address.clone());
        self.run(move |topics| async move {
            let name = parse(&topic)?;
            let here = TopicLookup {
                topic: name.to_string().into(),
                broker_address: address.into(),
                local: true,
                advertised: RVec::new(),
            };
            let Some(cluster) = topics.cluster() else { return Ok(here) };
            match cluster.route(&name).await.map_err(|e| topic_error(e.into()))? {
                Route::Local => Ok(here),
                Route::Remote(owner) => {
                    // None: not registered yet (or unreadable): no addresses to give.
                    let data = owner.data.unwrap_or_default();
                    Ok(TopicLookup {
                        topic: name.to_string().into(),
                        broker_address: data
                            .pulsar_service_url
                            .as_deref()
                            .map(|u| u.trim_start_matches("pulsar://").to_owned())
                            .unwrap_or_default()
                            .into(),
                        local: false,
                        advertised: protocols(&data),
                    })
                }
            }
        })
    }

    fn brokers(&self) -> FfiFuture<RResult<RVec<BrokerEntry>, HandlerError>> {
        let address = self.advertised_address.clone();
        self.run(move |topics| async move {
            let Some(cluster) = topics.cluster() else {
                return Ok(RVec::from(vec![BrokerEntry {
                    id: address.into(),
                    node_id: 0,
                    local: true,
                    pulsar_url: RString::new(),
                    advertised: RVec::new(),
                }]));
            };
            Ok(cluster
                .brokers()
                .into_iter()
                .map(|b| {
                    let data = b.data.unwrap_or_default();
                    BrokerEntry {
                        id: b.id.into(),
                        node_id: b.node_id,
                        local: b.local,
                        pulsar_url: data.pulsar_service_url.clone().unwrap_or_default().into(),
                        advertised: protocols(&data),
                    }
                })
                .collect())
        })
    }

    fn owners(&self, topic: RStr<'_>, auto_create: bool) -> FfiFuture<RResult<RVec<PartitionOwner>, HandlerError>> {
        let (topic, address) = (topic.as_str().to_owned(), self.advertised_address.clone());
        self.run(move |topics| async move {
            let name = parse(&topic)?;
            // In a cluster the topics mirror has the count without a round
            // trip (a topic it does not show yet is read from the store).
            let mirrored = topics.cluster().and_then(|c| c.mirrored_partitions(&name));
            let count = match mirrored {
                Some(count) => count,
                None => topics.partitions(&name, auto_create).await.map_err(topic_error)?,
            };
            let partitions: Vec<(u32, crate::topics::TopicName)> = if count == 0 {
                vec![(0, name.clone())]
            } else {
                (0..count).map(|i| (i, name.partition_name(i))).collect()
            };
            let Some(cluster) = topics.cluster() else {
                return Ok(partitions
                    .into_iter()
                    .map(|(i, _)| PartitionOwner {
                        partition: i,
                        broker_id: address.clone().into(),
                        node_id: 0,
                        local: true,
                    })
                    .collect());
            };
            let mut out = RVec::with_capacity(partitions.len());
            for (i, partition) in partitions {
                let owner = match cluster.route(&partition).await.map_err(|e| topic_error(e.into()))? {
                    Route::Local => PartitionOwner {
                        partition: i,
                        broker_id: cluster.id().into(),
                        node_id: crate::cluster::node_id(cluster.id()),
                        local: true,
                    },
                    Route::Remote(b) => {
                        PartitionOwner { partition: i, broker_id: b.id.into(), node_id: b.node_id, local: false }
                    }
                };
                out.push(owner);
            }
            Ok(out)
        })
    }

    fn allocate(&self, counter: RStr<'_>, count: u64, floor: u64) -> FfiFuture<RResult<u64, HandlerError>> {
        let counter = counter.as_str().to_owned();
        self.run(move |topics| async move { topics.allocate(&counter, count, floor).await.map_err(topic_error) })
    }

    fn node_id(&self) -> i32 {
        self.topics.cluster().map_or(0, |c| crate::cluster::node_id(c.id()))
    }

    fn partitioned_metadata(&self, topic: RStr<'_>, auto_create: bool) -> FfiFuture<RResult<u32, HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(
            move |topics| async move { topics.partitions(&parse(&topic)?, auto_create).await.map_err(topic_error) },
        )
    }

    fn create_namespace(&self, namespace: RStr<'_>) -> FfiFuture<RResult<(), HandlerError>> {
        let namespace = namespace.as_str().to_owned();
        self.run(move |topics| async move { topics.ensure_namespace(&namespace).await.map_err(topic_error) })
    }

    fn create_topic(&self, topic: RStr<'_>, partitions: u32) -> FfiFuture<RResult<(), HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(move |topics| async move {
            topics.create(&parse(&topic)?, partitions).await.map(|_| ()).map_err(topic_error)
        })
    }

    fn create_partitions(&self, topic: RStr<'_>, count: u32) -> FfiFuture<RResult<(), HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(
            move |topics| async move { topics.create_partitions(&parse(&topic)?, count).await.map_err(topic_error) },
        )
    }

    fn delete_topic(&self, topic: RStr<'_>) -> FfiFuture<RResult<(), HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(move |topics| async move { topics.delete(&parse(&topic)?).await.map_err(topic_error) })
    }

    fn list_topics(&self, namespace: RStr<'_>) -> FfiFuture<RResult<RVec<TopicInfo>, HandlerError>> {
        let namespace = namespace.as_str().to_owned();
        self.run(move |topics| async move {
            let listed = topics.list(&namespace).await.map_err(topic_error)?;
            Ok(listed
                .into_iter()
                .map(|(n, p)| TopicInfo { name: RString::from(n.to_string()), partitions: p })
                .collect())
        })
    }

    fn topic_config(&self, topic: RStr<'_>) -> FfiFuture<RResult<TopicConfig, HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(move |topics| async move {
            let (effective, own) = topics.effective_policies(&parse(&topic)?).await.map_err(topic_error)?;
            let overrides = TopicPolicies {
                retention_ms: own
                    .retention_ms
                    .or(own.retention_time_in_minutes.map(|m| if m < 0 { -1 } else { m.saturating_mul(60_000) }))
                    .unwrap_or(UNSET),
                retention_bytes: own
                    .retention_bytes
                    .or(own.retention_size_in_mb.map(|m| if m < 0 { -1 } else { m.saturating_mul(1 << 20) }))
                    .unwrap_or(UNSET),
                message_ttl_seconds: own.message_ttl_in_seconds.unwrap_or(UNSET),
            };
            let effective = TopicPolicies {
                retention_ms: effective.time_ms,
                retention_bytes: effective.size_bytes,
                message_ttl_seconds: effective.ttl_seconds,
            };
            Ok(TopicConfig { overrides, effective })
        })
    }

    fn set_topic_policies(&self, topic: RStr<'_>, p: TopicPolicies) -> FfiFuture<RResult<(), HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(move |topics| async move {
            let set = |v: i64| (v != UNSET).then_some(v);
            let policies = crate::topics::Policies {
                retention_ms: set(p.retention_ms),
                retention_bytes: set(p.retention_bytes),
                message_ttl_in_seconds: set(p.message_ttl_seconds),
                ..Default::default()
            };
            topics.set_policies(&parse(&topic)?, policies).await.map_err(topic_error)
        })
    }

    fn topic_properties(&self, topic: RStr<'_>) -> FfiFuture<RResult<Properties, HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(move |topics| async move {
            let name = parse(&topic)?;
            let record = topics.record(&name).await.map_err(topic_error)?;
            let record = record
                .ok_or_else(|| HandlerError::new(ErrorKind::NOT_FOUND, format!("topic {name} does not exist")))?;
            Ok(properties(record.properties))
        })
    }

    fn update_topic_properties(
        &self,
        topic: RStr<'_>,
        changes: PropertyChanges,
    ) -> FfiFuture<RResult<Properties, HandlerError>> {
        let topic = topic.as_str().to_owned();
        self.run(move |topics| async move {
            let changes = changes
                .into_iter()
                .map(|Tuple2(k, v)| (k.into_string(), v.into_option().map(RString::into_string)))
                .collect();
            Ok(properties(topics.update_properties(&parse(&topic)?, changes).await.map_err(topic_error)?))
        })
    }

    fn open_partition(
        &self,
        partition: RStr<'_>,
        options: OpenOptions,
    ) -> FfiFuture<RResult<FfiPartitionBox, HandlerError>> {
        let partition = partition.as_str().to_owned();
        let (runtime, converters, meters) = (self.runtime.clone(), Arc::clone(&self.converters), self.meters.clone());
        self.run(move |topics| async move {
            let name = parse(&partition)?;
            let wait = Duration::from_millis(u64::from(options.wait_ms));
            let ledger = topics.ledger_waiting(&name, options.auto_create, wait).await.map_err(topic_error)?;
            let handle = PartitionHandle::new(runtime, topics, converters, meters, name, options.auto_create, ledger);
            Ok(FfiPartition_TO::from_ptr(RArc::new(handle), TD_Opaque))
        })
    }
}
