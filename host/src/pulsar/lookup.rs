//! LOOKUP, PARTITIONED_METADATA and GET_TOPICS_OF_NAMESPACE: where a topic
//! is served, how many partitions it has, which topics a namespace holds.
//!
//! A standalone broker owns every topic, so a lookup answers this broker, in
//! the URL of the listener the client names ([`super::listeners`]); in a
//! cluster, the owner ([`lookup`]). Names the broker
//! does not serve are refused here, at the client's first step, with an
//! error the client does not retry: a `non-persistent://` topic (no
//! in-memory topics are served) and an unknown listener. (Pulsar answers
//! an unknown listener with ServiceNotReady, which its clients retry until
//! their operation timeout; NotAllowedError fails the lookup at once with
//! the message naming the listener.)

use crate::pulsar::proto::{
    base_command::Type, command_get_topics_of_namespace::Mode, command_lookup_topic_response::LookupType,
    command_partitioned_topic_metadata_response::LookupType as MetadataLookupType, BaseCommand,
    CommandGetTopicsOfNamespace, CommandGetTopicsOfNamespaceResponse, CommandLookupTopic, CommandLookupTopicResponse,
    CommandPartitionedTopicMetadata, CommandPartitionedTopicMetadataResponse, ServerError,
};

use super::{connection::topic_error, frame::cmd, PulsarService};
use crate::{cluster::Route, security::authz::Action, topics::TopicName};

/// The error for a name this broker does not serve, before it is parsed:
/// non-persistent topics get one that names the feature and that clients
/// do not retry (InvalidTopicName would be retried until the client's
/// operation timeout).
pub fn refused(topic: &str) -> Option<(ServerError, String)> {
    topic.starts_with("non-persistent://").then(|| {
        (
            ServerError::NotAllowedError,
            format!(
                "{topic}: non-persistent topics are not served by this broker; use a persistent:// topic \
                 (every message is stored)"
            ),
        )
    })
}

/// The name, parsed, or the error to answer.
pub fn parse(topic: &str) -> Result<TopicName, (ServerError, String)> {
    if let Some(refusal) = refused(topic) {
        return Err(refusal);
    }
    TopicName::parse(topic).map_err(|e| (ServerError::InvalidTopicName, e.to_string()))
}

/// Whether `role` may do `action` on `name`, as an error to answer.
pub async fn authorize(
    service: &PulsarService,
    role: Option<&str>,
    action: Action,
    name: &TopicName,
) -> Result<(), (ServerError, String)> {
    match service.authorizer.allows(role, action, name).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            let verb = match action {
                Action::Lookup => "look up",
                Action::Produce => "produce on",
                Action::Consume => "consume from",
                Action::Admin => "administer",
            };
            let who = role.map_or_else(|| "an anonymous client".to_owned(), |r| format!("role {r}"));
            Err((ServerError::AuthorizationError, format!("{who} is not authorized to {verb} {name}")))
        }
        Err(e) => Err((topic_error(&e), e.to_string())),
    }
}

/// Answers PARTITIONED_METADATA (creating the topic per the auto-creation policy).
pub async fn partitioned_metadata(
    service: &PulsarService,
    role: Option<&str>,
    m: CommandPartitionedTopicMetadata,
) -> BaseCommand {
    let result = match parse(&m.topic) {
        Ok(name) => match authorize(service, role, Action::Lookup, &name).await {
            Ok(()) => service.topics.partitions(&name, true).await.map_err(|e| (topic_error(&e), e.to_string())),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let response = match result {
        Ok(partitions) => CommandPartitionedTopicMetadataResponse {
            partitions: Some(partitions),
            request_id: m.request_id,
            response: Some(MetadataLookupType::Success as i32),
            ..Default::default()
        },
        Err((error, message)) => {
            tracing::info!(topic = %m.topic, %message, "partitioned metadata refused");
            CommandPartitionedTopicMetadataResponse {
                request_id: m.request_id,
                response: Some(MetadataLookupType::Failed as i32),
                error: Some(error as i32),
                message: Some(message),
                ..Default::default()
            }
        }
    };
    cmd(Type::PartitionedMetadataResponse, |c| c.partition_metadata_response = Some(response))
}

/// Answers LOOKUP: this broker, in the named listener's URLs, when it
/// serves the topic; in a cluster, an authoritative Redirect to the
/// owner's service URL when another broker owns it (or placement proposes
/// another for an unowned one). A lookup that arrives by a redirect
/// (`authoritative`) claims an unowned topic here, so redirects end.
pub async fn lookup(service: &PulsarService, role: Option<&str>, l: &CommandLookupTopic) -> BaseCommand {
    let listener = l.advertised_listener_name.as_deref();
    let here = |service: &PulsarService| {
        service
            .config
            .listeners
            .urls(listener, &service.service_url, service.service_url_tls.as_deref())
            .map(|urls| (LookupType::Connect, urls.url, urls.url_tls))
            .map_err(|message| (ServerError::NotAllowedError, message))
    };
    let parsed = match parse(&l.topic) {
        Ok(name) => authorize(service, role, Action::Lookup, &name).await.map(|()| name),
        Err(e) => Err(e),
    };
    let result = match (parsed, service.topics.cluster()) {
        (Err(e), _) => Err(e),
        (Ok(_), None) => here(service),
        (Ok(name), Some(cluster)) => {
            let routed = if l.authoritative.unwrap_or(false) {
                cluster.route_claiming(&name).await.map_err(|e| (ServerError::ServiceNotReady, e.to_string()))
            } else {
                cluster.route(&name).await.map_err(|e| (ServerError::ServiceNotReady, e.to_string()))
            };
            match routed {
                Ok(Route::Local) => here(service),
                Ok(Route::Remote(owner)) => {
                    match owner.data.and_then(|d| d.pulsar_service_url.map(|u| (u, d.pulsar_service_url_tls))) {
                        Some((url, url_tls)) => Ok((LookupType::Redirect, Some(url), url_tls)),
                        None => Err((
                            ServerError::ServiceNotReady,
                            format!("{name} is served by broker {}, which serves no Pulsar protocol (yet)", owner.id),
                        )),
                    }
                }
                Err(e) => Err(e),
            }
        }
    };
    let response = match result {
        Ok((kind, url, url_tls)) => CommandLookupTopicResponse {
            broker_service_url: url,
            broker_service_url_tls: url_tls,
            response: Some(kind as i32),
            request_id: l.request_id,
            authoritative: Some(true),
            proxy_through_service_url: Some(false),
            ..Default::default()
        },
        Err((error, message)) => {
            tracing::info!(topic = %l.topic, listener = ?listener, %message, "lookup refused");
            CommandLookupTopicResponse {
                response: Some(LookupType::Failed as i32),
                request_id: l.request_id,
                error: Some(error as i32),
                message: Some(message),
                ..Default::default()
            }
        }
    };
    cmd(Type::LookupResponse, |c| c.lookup_topic_response = Some(response))
}

/// Answers GET_TOPICS_OF_NAMESPACE: every topic of the namespace, a
/// partitioned one as its partitions (the client applies its pattern).
pub async fn topics_of_namespace(
    service: &PulsarService,
    role: Option<&str>,
    g: &CommandGetTopicsOfNamespace,
) -> BaseCommand {
    // Every topic here is persistent: a listing of non-persistent ones is empty.
    let listed = if g.mode == Some(Mode::NonPersistent as i32) {
        Ok(Vec::new())
    } else {
        service.topics.list(&g.namespace).await
    };
    match listed {
        Ok(list) => {
            let mut topics = Vec::new();
            let whole = service.authorizer.allows_namespace(role, Action::Lookup, &g.namespace).await.unwrap_or(false);
            for (name, partitions) in list {
                // A role sees the topics it may look up, and no other.
                if !whole && !service.authorizer.allows(role, Action::Lookup, &name).await.unwrap_or(false) {
                    continue;
                }
                if partitions == 0 {
                    topics.push(name.to_string());
                } else {
                    topics.extend((0..partitions).map(|i| name.partition_name(i).to_string()));
                }
            }
            let response = CommandGetTopicsOfNamespaceResponse {
                request_id: g.request_id,
                topics,
                filtered: Some(false),
                changed: Some(true),
                ..Default::default()
            };
            cmd(Type::GetTopicsOfNamespaceResponse, |c| c.get_topics_of_namespace_response = Some(response))
        }
        Err(e) => super::connection::error(g.request_id, topic_error(&e), e.to_string()),
    }
}
