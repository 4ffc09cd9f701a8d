//! Tenants and permissions in the metadata store, as Pulsar keeps them:
//! a tenant's `TenantInfo` (`adminRoles`, `allowedClusters`) at
//! `/admin/tenants/<tenant>`, and a namespace's `auth_policies`
//! (`namespace_auth`: role → actions; `destination_auth`: topic → role →
//! actions) inside its policies at `/admin/namespaces/<tenant>/<ns>`.
//! Every change is a compare-and-set, so two brokers (or two admin calls)
//! never lose each other's grants.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{blocking, namespace_key, Policies, TopicError, Topics};
use crate::metadata::{Expect, MetadataError};

/// A tenant, as Pulsar's admin API writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantInfo {
    /// Roles that administer the tenant (its namespaces and topics).
    #[serde(default)]
    pub admin_roles: BTreeSet<String>,
    /// Clusters the tenant may use.
    #[serde(default)]
    pub allowed_clusters: BTreeSet<String>,
}

/// A namespace's permissions (Pulsar's `AuthPolicies`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthPolicies {
    /// Role → actions on every topic of the namespace.
    #[serde(default)]
    pub namespace_auth: BTreeMap<String, BTreeSet<String>>,
    /// Topic (`persistent://t/ns/x`) → role → actions.
    #[serde(default)]
    pub destination_auth: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// Roles allowed to subscribe (Pulsar's; kept, not enforced).
    #[serde(default)]
    pub subscription_auth_roles: BTreeMap<String, BTreeSet<String>>,
}

/// The actions a grant names (Pulsar's `AuthAction`).
pub const ACTIONS: &[&str] = &["produce", "consume", "functions", "sources", "sinks", "packages"];

/// Checks `actions` are Pulsar's action names.
pub fn check_actions(actions: &BTreeSet<String>) -> Result<(), TopicError> {
    match actions.iter().find(|a| !ACTIONS.contains(&a.as_str())) {
        Some(unknown) => {
            Err(TopicError::Invalid(format!("unknown action {unknown:?}: expected some of {}", ACTIONS.join(", "))))
        }
        None => Ok(()),
    }
}

fn tenant_key(tenant: &str) -> String {
    format!("/admin/tenants/{tenant}")
}

fn parse<T: for<'de> Deserialize<'de> + Default>(key: &str, bytes: &[u8]) -> Result<T, TopicError> {
    if bytes.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| TopicError::Metadata(MetadataError::Store(format!("{key}: {e}"))))
}

impl Topics {
    /// Reads `key` as JSON, applies `change` and writes it back under a
    /// compare-and-set, retrying when another writer got there first.
    /// `None` from `change` writes nothing. A missing key is `missing`'s.
    async fn update_json<T, R>(
        &self,
        key: String,
        missing: fn(&str) -> TopicError,
        change: impl Fn(&mut T) -> Result<R, TopicError> + Send + 'static,
    ) -> Result<R, TopicError>
    where
        T: Serialize + for<'de> Deserialize<'de> + Default + Send + 'static,
        R: Send + 'static,
    {
        let store = std::sync::Arc::clone(&self.store);
        blocking(move || loop {
            let Some(current) = store.get(&key)? else { return Err(missing(&key)) };
            let mut value: T = parse(&key, &current.value)?;
            let result = change(&mut value)?;
            let bytes = serde_json::to_vec(&value).map_err(|e| MetadataError::Store(e.to_string()))?;
            match store.put(&key, &bytes, Expect::Version(current.version)) {
                Ok(_) => return Ok(result),
                Err(MetadataError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        })
        .await?
    }

    /// The tenant's information; `None` if it does not exist.
    pub async fn tenant(&self, tenant: &str) -> Result<Option<TenantInfo>, TopicError> {
        let store = std::sync::Arc::clone(&self.store);
        let key = tenant_key(tenant);
        let raw = blocking(move || store.get(&key).map(|v| v.map(|v| (key, v.value)))).await??;
        raw.map(|(key, bytes)| parse(&key, &bytes)).transpose()
    }

    /// Every tenant's name.
    pub async fn tenants(&self) -> Result<Vec<String>, TopicError> {
        let store = std::sync::Arc::clone(&self.store);
        let keys = blocking(move || store.list("/admin/tenants/")).await??;
        Ok(keys
            .iter()
            .filter_map(|k| k.strip_prefix("/admin/tenants/"))
            .filter(|t| !t.contains('/'))
            .map(str::to_owned)
            .collect())
    }

    /// Creates the tenant (`create`) or replaces an existing one's information.
    pub async fn put_tenant(&self, tenant: &str, info: TenantInfo, create: bool) -> Result<(), TopicError> {
        if !super::name::valid_segment(tenant) {
            return Err(TopicError::Invalid(format!("invalid tenant name {tenant:?}")));
        }
        let store = std::sync::Arc::clone(&self.store);
        let key = tenant_key(tenant);
        let bytes = serde_json::to_vec(&info).map_err(|e| MetadataError::Store(e.to_string()))?;
        let expect = if create { Expect::Absent } else { Expect::Any };
        let name = tenant.to_owned();
        blocking(move || {
            if !create && store.get(&key)?.is_none() {
                return Err(TopicError::NotFound(format!("tenant {name}")));
            }
            match store.put(&key, &bytes, expect) {
                Ok(_) => Ok(()),
                Err(MetadataError::Conflict { .. }) => Err(TopicError::AlreadyExists(format!("tenant {name}"))),
                Err(e) => Err(e.into()),
            }
        })
        .await?
    }

    /// The namespaces of `tenant`, as `tenant/ns`.
    pub async fn namespaces(&self, tenant: &str) -> Result<Vec<String>, TopicError> {
        let store = std::sync::Arc::clone(&self.store);
        let prefix = format!("/admin/namespaces/{tenant}/");
        let keys = blocking(move || store.list(&prefix)).await??;
        Ok(keys
            .iter()
            .filter_map(|k| k.strip_prefix("/admin/namespaces/"))
            .filter(|ns| ns.matches('/').count() == 1)
            .map(str::to_owned)
            .collect())
    }

    /// Creates namespace `tenant/ns` of an existing tenant; one that
    /// exists already is [`TopicError::AlreadyExists`].
    pub async fn create_namespace(&self, namespace: &str) -> Result<(), TopicError> {
        let valid = namespace
            .split_once('/')
            .is_some_and(|(t, ns)| super::name::valid_segment(t) && super::name::valid_segment(ns));
        if !valid {
            return Err(TopicError::Invalid(format!("invalid namespace name {namespace:?}")));
        }
        let store = std::sync::Arc::clone(&self.store);
        let (key, name) = (namespace_key(namespace), namespace.to_owned());
        blocking(move || match store.put(&key, b"{}", Expect::Absent) {
            Ok(_) => Ok(()),
            Err(MetadataError::Conflict { .. }) => Err(TopicError::AlreadyExists(format!("namespace {name}"))),
            Err(e) => Err(e.into()),
        })
        .await?
    }

    /// The namespace's permissions.
    pub async fn permissions(&self, namespace: &str) -> Result<AuthPolicies, TopicError> {
        let policies: Option<Policies> = self.get_json(namespace_key(namespace)).await?;
        policies.map(|p| p.auth_policies).ok_or_else(|| TopicError::NamespaceNotFound(namespace.to_owned()))
    }

    /// Grants `actions` to `role` on the namespace, or on one of its topics
    /// (`topic`: `persistent://t/ns/x`); an empty set revokes.
    pub async fn grant(
        &self,
        namespace: &str,
        topic: Option<String>,
        role: &str,
        actions: BTreeSet<String>,
    ) -> Result<(), TopicError> {
        check_actions(&actions)?;
        if role.is_empty() {
            return Err(TopicError::Invalid("a grant names a role".into()));
        }
        let role = role.to_owned();
        self.update_json(namespace_key(namespace), namespace_missing, move |policies: &mut Policies| {
            let auth = &mut policies.auth_policies;
            let roles = match &topic {
                None => &mut auth.namespace_auth,
                Some(topic) => auth.destination_auth.entry(topic.clone()).or_default(),
            };
            if actions.is_empty() {
                roles.remove(&role);
            } else {
                roles.insert(role.clone(), actions.clone());
            }
            if let Some(topic) = &topic {
                if auth.destination_auth.get(topic).is_some_and(BTreeMap::is_empty) {
                    auth.destination_auth.remove(topic);
                }
            }
            Ok(())
        })
        .await
    }
}

fn namespace_missing(key: &str) -> TopicError {
    TopicError::NamespaceNotFound(key.trim_start_matches("/admin/namespaces/").to_owned())
}

impl AuthPolicies {
    /// No grant at all (not written then).
    pub fn is_empty(&self) -> bool {
        self.namespace_auth.is_empty() && self.destination_auth.is_empty() && self.subscription_auth_roles.is_empty()
    }
}

impl Topics {
    /// Deletes tenant `tenant`, which must have no namespace left.
    pub async fn delete_tenant(&self, tenant: &str) -> Result<(), TopicError> {
        if self.tenant(tenant).await?.is_none() {
            return Err(TopicError::NotFound(format!("tenant {tenant}")));
        }
        let namespaces = self.namespaces(tenant).await?;
        if !namespaces.is_empty() {
            return Err(TopicError::NotEmpty(format!(
                "The tenant {tenant} still has {} namespaces ({})",
                namespaces.len(),
                namespaces.join(", ")
            )));
        }
        let store = std::sync::Arc::clone(&self.store);
        let key = tenant_key(tenant);
        blocking(move || store.delete(&key, Expect::Any)).await??;
        tracing::info!(tenant, "tenant deleted");
        Ok(())
    }

    /// Deletes namespace `tenant/ns`, which must hold no topic.
    pub async fn delete_namespace(&self, namespace: &str) -> Result<(), TopicError> {
        let topics = self.list(namespace).await?;
        if !topics.is_empty() {
            return Err(TopicError::NotEmpty(format!(
                "Cannot delete non empty namespace {namespace}: it has {} topics",
                topics.len()
            )));
        }
        let store = std::sync::Arc::clone(&self.store);
        let key = namespace_key(namespace);
        blocking(move || store.delete(&key, Expect::Any)).await??;
        tracing::info!(namespace, "namespace deleted");
        Ok(())
    }

    /// Changes namespace `tenant/ns`'s policies (compare-and-set); returns them as written.
    pub async fn update_namespace_policies(
        &self,
        namespace: &str,
        change: impl Fn(&mut Policies) -> Result<(), TopicError> + Send + 'static,
    ) -> Result<Policies, TopicError> {
        self.update_json(
            namespace_key(namespace),
            |key| TopicError::NamespaceNotFound(key.trim_start_matches("/admin/namespaces/").to_owned()),
            move |policies: &mut Policies| {
                change(policies)?;
                Ok(policies.clone())
            },
        )
        .await
    }
}
