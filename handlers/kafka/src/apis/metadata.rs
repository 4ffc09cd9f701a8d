//! Metadata (key 3).
//!
//! Versions: 0-12. Brokers: every live broker at the client's listener
//! ([`crate::cluster`]); standalone, this broker alone, node 0, the
//! controller and every partition's leader. In a cluster each partition's
//! leader is its owner (LEADER_NOT_AVAILABLE while the owner is not
//! reachable on this listener), and the controller is this broker. Named topics are looked up (and auto-created when the request
//! allows it, v4+, and the broker's `allowAutoTopicCreation` does); a request
//! for all topics lists the topics of `kafkaTenant/kafkaNamespace`, by their
//! short names, so no topic appears twice under two names.
//! Authorization ([`crate::authz`]): a topic named is answered
//! TOPIC_AUTHORIZATION_FAILED (29) when the role may not look it up
//! (`produce` or `consume`), checked before the lookup, so it is not
//! auto-created; the list of all topics holds only those the role may look
//! up (all of them with a grant on the namespace). Authorized operations,
//! when asked and authorization is on, are the role's: READ with
//! `consume`, WRITE with `produce`, DESCRIBE and DESCRIBE_CONFIGS with
//! either, and every one for a tenant admin; for the cluster, every one
//! with admin rights on `kafkaTenant/kafkaNamespace`, else DESCRIBE,
//! DESCRIBE_CONFIGS and IDEMPOTENT_WRITE.
//! Gaps: topics requested by id only (v10+) answer UNKNOWN_TOPIC_ID; other
//! namespaces are reachable by name (`tenant/ns/topic`) but not listed.

use kafka_protocol::{
    messages::{
        metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
        BrokerId, MetadataRequest, MetadataResponse, TopicName,
    },
    protocol::{StrBytes, VersionRange},
};
use polyport_handler_api::storage::Operation;

use super::RequestContext;
use crate::{
    cluster::{self, Node},
    errors,
    topics::{kafka_partitions, topic_id},
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 12 };

const UNKNOWN_TOPIC_ID: i16 = 100;

const LEADER_NOT_AVAILABLE: i16 = 5;

async fn topic(
    ctx: &RequestContext<'_>,
    nodes: &[Node],
    name: TopicName,
    pulsar: Option<&str>,
    result: Result<u32, i16>,
) -> MetadataResponseTopic {
    let here = ctx.shared.node_id();
    let id = pulsar.map(topic_id).unwrap_or_default();
    match result {
        Ok(partitions) => {
            let leaders = match (ctx.host(), pulsar) {
                (Some(host), Some(pulsar)) => cluster::leaders(host, pulsar).await,
                _ => None,
            };
            let partitions = (0..kafka_partitions(partitions) as i32)
                .map(|i| {
                    let leader = leaders.as_ref().map_or(here, |l| l.get(i as usize).copied().unwrap_or(-1));
                    let partition = MetadataResponsePartition::default().with_partition_index(i);
                    if !nodes.iter().any(|n| n.id == leader) {
                        return partition.with_error_code(LEADER_NOT_AVAILABLE).with_leader_id(BrokerId(-1));
                    }
                    let node = BrokerId(leader);
                    partition
                        .with_leader_id(node)
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect();
            MetadataResponseTopic::default().with_name(Some(name)).with_topic_id(id).with_partitions(partitions)
        }
        Err(code) => MetadataResponseTopic::default().with_name(Some(name)).with_error_code(code),
    }
}

/// Describes the cluster and the requested (or all) topics.
pub async fn handle(ctx: &RequestContext<'_>, request: MetadataRequest) -> MetadataResponse {
    let nodes = cluster::nodes(ctx).await;
    let brokers = nodes
        .iter()
        .map(|n| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(n.id))
                .with_host(StrBytes::from_string(n.host.clone()))
                .with_port(n.port)
        })
        .collect();
    // Before v4 the request cannot say, and Kafka auto-created.
    let auto_create = ctx.version < 4 || request.allow_auto_topic_creation;
    let mapper = &ctx.shared.topics;
    let mut topics = Vec::new();
    // v0 has no null topic list: an empty list means "all topics".
    let requested = match request.topics {
        Some(list) if !(list.is_empty() && ctx.version == 0) => Some(list),
        _ => None,
    };
    // Beside each topic answered: its Pulsar name, if the role may look it up.
    let mut described: Vec<Option<String>> = Vec::new();
    match (requested, ctx.host()) {
        (Some(list), host) => {
            for t in list {
                let Some(name) = t.name else {
                    topics.push(
                        MetadataResponseTopic::default().with_topic_id(t.topic_id).with_error_code(UNKNOWN_TOPIC_ID),
                    );
                    described.push(None);
                    continue;
                };
                let pulsar = mapper.pulsar(name.as_str());
                // Checked before the lookup, which may create the topic.
                let refused = match (&pulsar, host) {
                    (Ok(p), Some(_)) => !ctx.allowed(Operation::Lookup, p).await,
                    _ => false,
                };
                let result = match (&pulsar, host) {
                    (Err(code), _) => Err(*code),
                    (Ok(_), None) => Err(errors::UNKNOWN_TOPIC_OR_PARTITION),
                    (Ok(_), Some(_)) if refused => Err(errors::TOPIC_AUTHORIZATION_FAILED),
                    (Ok(p), Some(host)) => mapper.partitions(host, p, auto_create).await,
                };
                topics.push(topic(ctx, &nodes, name, pulsar.as_deref().ok(), result).await);
                described.push(pulsar.ok().filter(|_| !refused));
            }
        }
        (None, Some(host)) => match host.list_topics(mapper.namespace()).await {
            Ok(list) => {
                // The namespace's grant covers every topic; without it, each
                // topic's own grants decide whether it is listed.
                let everything = ctx.permitted(Operation::Lookup, mapper.namespace()).await;
                let total = list.len();
                for (pulsar, partitions) in list {
                    if !everything && !ctx.permitted(Operation::Lookup, &pulsar).await {
                        continue;
                    }
                    let name = TopicName(StrBytes::from_string(mapper.kafka_name(&pulsar)));
                    topics.push(topic(ctx, &nodes, name, Some(&pulsar), Ok(partitions)).await);
                    described.push(Some(pulsar));
                }
                if topics.len() < total {
                    tracing::debug!(listed = topics.len(), total, "Metadata lists the topics the role may look up");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list topics for Metadata"),
        },
        (None, None) => {}
    }
    if request.include_topic_authorized_operations && ctx.authorizing() {
        // The role's own operations; none for a topic it may not look up.
        for (t, pulsar) in topics.iter_mut().zip(&described) {
            t.topic_authorized_operations = match pulsar {
                Some(pulsar) => super::authorized::topic_for(ctx, pulsar).await,
                None => super::authorized::NOT_PROVIDED,
            };
        }
    } else {
        let operations = super::authorized::topic(request.include_topic_authorized_operations);
        for t in &mut topics {
            t.topic_authorized_operations = operations;
        }
    }
    let cluster_operations = if request.include_cluster_authorized_operations && ctx.authorizing() {
        super::authorized::cluster_for(ctx).await
    } else {
        super::authorized::cluster(request.include_cluster_authorized_operations)
    };
    MetadataResponse::default()
        .with_cluster_authorized_operations(cluster_operations)
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(ctx.shared.broker.cluster_id.clone())))
        .with_controller_id(BrokerId(ctx.shared.node_id()))
        .with_topics(topics)
}
