//! The operations a client is authorized for, as Metadata (v8+),
//! DescribeCluster and DescribeGroups (v3+) report them when asked
//! (`include_*_authorized_operations`): a bit field of Kafka's ACL
//! operation codes. With no authorizer configured, Kafka reports every
//! operation the resource type supports, and so does this broker while
//! authorization is off. With it on ([`crate::authz`]), a topic's and the
//! cluster's are the role's ([`topic_for`], [`cluster_for`]); a group's
//! are all or none, as every group operation needs the same grant. Not
//! asked, the field is i32::MIN ("not provided").

use polyport_handler_api::storage::Operation;

use super::RequestContext;

/// Kafka's ACL operation codes.
const READ: u8 = 3;
const WRITE: u8 = 4;
const CREATE: u8 = 5;
const DELETE: u8 = 6;
const ALTER: u8 = 7;
const DESCRIBE: u8 = 8;
const CLUSTER_ACTION: u8 = 9;
const DESCRIBE_CONFIGS: u8 = 10;
const ALTER_CONFIGS: u8 = 11;
const IDEMPOTENT_WRITE: u8 = 12;

/// "Not provided".
pub const NOT_PROVIDED: i32 = i32::MIN;

fn bits(operations: &[u8]) -> i32 {
    operations.iter().fold(0, |field, op| field | (1 << op))
}

/// What a cluster supports (Kafka's `AclEntry.supportedOperations(CLUSTER)`).
pub fn cluster(asked: bool) -> i32 {
    let all = [CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, ALTER, DESCRIBE];
    if asked {
        bits(&all)
    } else {
        NOT_PROVIDED
    }
}

/// What a topic supports.
pub fn topic(asked: bool) -> i32 {
    let all = [READ, WRITE, CREATE, DESCRIBE, DELETE, ALTER, DESCRIBE_CONFIGS, ALTER_CONFIGS];
    if asked {
        bits(&all)
    } else {
        NOT_PROVIDED
    }
}

/// What the session's role may do to topic `pulsar` (authorization on):
/// READ with `consume`, WRITE with `produce`, DESCRIBE and DESCRIBE_CONFIGS
/// with either (what Metadata, ListOffsets and DescribeConfigs ask), and
/// every operation for a tenant admin (`admin`: create, delete, alter).
pub async fn topic_for(ctx: &RequestContext<'_>, pulsar: &str) -> i32 {
    if ctx.permitted(Operation::Admin, pulsar).await {
        return topic(true);
    }
    let read = ctx.permitted(Operation::Consume, pulsar).await;
    let write = ctx.permitted(Operation::Produce, pulsar).await;
    let mut operations = Vec::new();
    if read {
        operations.push(READ);
    }
    if write {
        operations.push(WRITE);
    }
    if read || write {
        operations.extend([DESCRIBE, DESCRIBE_CONFIGS]);
    }
    bits(&operations)
}

/// What the session's role may do to the cluster (authorization on):
/// everything with admin rights on the default namespace
/// (`kafkaTenant/kafkaNamespace`, where broker config changes are
/// checked), else what needs no grant: DESCRIBE (DescribeCluster),
/// DESCRIBE_CONFIGS (the broker's configs) and IDEMPOTENT_WRITE
/// (InitProducerId).
pub async fn cluster_for(ctx: &RequestContext<'_>) -> i32 {
    if ctx.permitted(Operation::Admin, ctx.shared.topics.namespace()).await {
        cluster(true)
    } else {
        bits(&[DESCRIBE, DESCRIBE_CONFIGS, IDEMPOTENT_WRITE])
    }
}

/// What a consumer group supports.
pub fn group(asked: bool) -> i32 {
    if asked {
        bits(&[READ, DESCRIBE, DELETE])
    } else {
        NOT_PROVIDED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_operation_when_asked() {
        assert_eq!(cluster(true).count_ones(), 7);
        assert_eq!(topic(true).count_ones(), 8);
        assert_eq!(group(true), (1 << 3) | (1 << 8) | (1 << 6));
        assert_eq!(cluster(false), NOT_PROVIDED);
    }
}
