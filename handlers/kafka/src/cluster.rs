//! The cluster as Kafka clients see it: every live broker as a node at the
//! client's listener, and each partition's leader (its owner). On a
//! standalone broker, or a host without the cluster calls (older than
//! handler-api 0.2.1), that is this broker alone, node 0.
//!
//! Each broker advertises its listeners (`NAME://host:port,...`, as KoP
//! publishes `kafkaAdvertisedListeners`) in its registration; a client on
//! listener `NAME` is given every broker's `NAME` endpoint, as Kafka does
//! with listener names. A broker without that listener is left out.

use polyport_handler_api::Host;

use crate::apis::RequestContext;

/// The protocol name this handler registers under.
const PROTOCOL: &str = "kafka";

/// A broker as Metadata, DescribeCluster and FindCoordinator name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its node id.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
}

/// The `name` endpoint of an advertised listener list.
fn endpoint(advertised: &str, name: &str) -> Option<(String, i32)> {
    advertised.split(',').map(str::trim).find_map(|item| {
        let (listener, rest) = item.split_once("://")?;
        if !listener.eq_ignore_ascii_case(name) {
            return None;
        }
        let (host, port) = rest.rsplit_once(':')?;
        Some((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port.parse().ok()?))
    })
}

/// This broker, at the client's listener.
fn local(ctx: &RequestContext<'_>) -> Node {
    Node { id: ctx.shared.node_id(), host: ctx.listener.advertised_host.clone(), port: ctx.listener.advertised_port }
}

/// Every live broker with the client's listener, this one first.
pub async fn nodes(ctx: &RequestContext<'_>) -> Vec<Node> {
    let mut nodes = vec![local(ctx)];
    let Some(host) = ctx.host() else { return nodes };
    let Ok(brokers) = host.brokers().await else { return nodes };
    for b in brokers.into_iter().filter(|b| !b.local) {
        let advertised = b.advertised.iter().find(|t| t.0.as_str() == PROTOCOL).map(|t| t.1.as_str());
        if let Some((host, port)) = advertised.and_then(|a| endpoint(a, &ctx.listener.name)) {
            nodes.push(Node { id: b.node_id, host, port });
        }
    }
    nodes
}

/// The leader (owner) node id of each partition of `pulsar`, by index; None
/// when the host cannot say (a standalone broker then leads them all).
pub async fn leaders(host: &Host, pulsar: &str) -> Option<Vec<i32>> {
    let owners = host.owners(pulsar, false).await.ok()?;
    let mut leaders = vec![-1; owners.len()];
    for o in owners {
        if let Some(slot) = leaders.get_mut(o.partition as usize) {
            *slot = o.node_id;
        }
    }
    Some(leaders)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_listener_is_picked_from_the_advertised_list() {
        let advertised = "PLAINTEXT://10.0.0.1:9092, INTERNAL://[::1]:19092";
        assert_eq!(endpoint(advertised, "PLAINTEXT"), Some(("10.0.0.1".into(), 9092)));
        assert_eq!(endpoint(advertised, "internal"), Some(("::1".into(), 19092)));
        assert_eq!(endpoint(advertised, "SSL"), None);
        assert_eq!(endpoint("garbage", "PLAINTEXT"), None);
    }
}
