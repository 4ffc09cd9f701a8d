//! Authorization, Pulsar's model (`PulsarAuthorizationProvider`):
//!
//! - a super-user (`superUserRoles`) may do anything;
//! - a tenant's admin (`adminRoles` of the tenant) may do anything in it:
//!   create, delete and reconfigure its namespaces and topics, and produce
//!   and consume;
//! - other roles may `produce` or `consume` where a namespace grants the
//!   action to the role (`namespace_auth`) or a topic does
//!   (`destination_auth`); looking a topic up (describing it) needs either.
//!
//! A client without a role (a Kafka `PLAINTEXT` listener; authentication
//! off) is `anonymousUserRole` when that is set, and may do nothing
//! otherwise. With `authorizationEnabled=false` everything is allowed.
//!
//! Permissions are read from the metadata store and kept for
//! [`CACHE_TTL`]: a grant or revoke made on another broker applies here
//! within that long; one made through this broker's admin API at once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::topics::{
    tenants::{AuthPolicies, TenantInfo},
    TopicError, TopicName, Topics,
};

/// How long permissions read from the store are trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// What a role asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Look a topic up, describe it, list it.
    Lookup,
    /// Append.
    Produce,
    /// Read, with cursors or groups.
    Consume,
    /// Create, delete or reconfigure (a tenant admin's right).
    Admin,
}

impl Action {
    fn grant_name(self) -> Option<&'static str> {
        match self {
            Self::Produce => Some("produce"),
            Self::Consume => Some("consume"),
            Self::Lookup | Self::Admin => None,
        }
    }
}

/// The authorization keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzConfig {
    /// `authorizationEnabled`.
    pub enabled: bool,
    /// `superUserRoles`.
    pub super_users: Vec<String>,
    /// `anonymousUserRole`: the role of clients that prove none.
    pub anonymous_role: Option<String>,
}

type Cached<T> = Mutex<HashMap<String, (Instant, Arc<T>)>>;

/// Answers "may this role do that".
pub struct Authorizer {
    config: AuthzConfig,
    topics: Arc<Topics>,
    tenants: Cached<Option<TenantInfo>>,
    namespaces: Cached<Option<AuthPolicies>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").field("enabled", &self.config.enabled).finish_non_exhaustive()
    }
}

fn cached<T>(cache: &Cached<T>, key: &str) -> Option<Arc<T>> {
    let map = cache.lock().ok()?;
    map.get(key).filter(|(at, _)| at.elapsed() < CACHE_TTL).map(|(_, v)| Arc::clone(v))
}

fn remember<T>(cache: &Cached<T>, key: &str, value: Arc<T>) {
    if let Ok(mut map) = cache.lock() {
        if map.len() > 10_000 {
            map.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        }
        map.insert(key.to_owned(), (Instant::now(), value));
    }
}

impl Authorizer {
    /// An authorizer reading `topics`' store.
    pub fn new(config: AuthzConfig, topics: Arc<Topics>) -> Self {
        Self { config, topics, tenants: Mutex::default(), namespaces: Mutex::default() }
    }

    /// `authorizationEnabled`.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Whether `role` is a super-user.
    pub fn is_super_user(&self, role: Option<&str>) -> bool {
        let role = self.effective(role);
        role.is_some_and(|r| self.config.super_users.iter().any(|s| s == r))
    }

    fn effective<'a>(&'a self, role: Option<&'a str>) -> Option<&'a str> {
        role.filter(|r| !r.is_empty()).or(self.config.anonymous_role.as_deref())
    }

    /// Forgets what was read of `tenant` and its namespaces (after a change
    /// made here).
    pub fn invalidate(&self, tenant: &str) {
        if let Ok(mut map) = self.tenants.lock() {
            map.remove(tenant);
        }
        if let Ok(mut map) = self.namespaces.lock() {
            let prefix = format!("{tenant}/");
            map.retain(|ns, _| !ns.starts_with(&prefix));
        }
    }

    async fn tenant(&self, tenant: &str) -> Result<Arc<Option<TenantInfo>>, TopicError> {
        if let Some(hit) = cached(&self.tenants, tenant) {
            return Ok(hit);
        }
        let info = Arc::new(self.topics.tenant(tenant).await?);
        remember(&self.tenants, tenant, Arc::clone(&info));
        Ok(info)
    }

    async fn namespace(&self, namespace: &str) -> Result<Arc<Option<AuthPolicies>>, TopicError> {
        if let Some(hit) = cached(&self.namespaces, namespace) {
            return Ok(hit);
        }
        let policies = match self.topics.permissions(namespace).await {
            Ok(p) => Some(p),
            Err(TopicError::NamespaceNotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let policies = Arc::new(policies);
        remember(&self.namespaces, namespace, Arc::clone(&policies));
        Ok(policies)
    }

    /// Whether `role` administers `tenant` (or is a super-user).
    pub async fn is_tenant_admin(&self, role: Option<&str>, tenant: &str) -> Result<bool, TopicError> {
        if !self.config.enabled || self.is_super_user(role) {
            return Ok(true);
        }
        let Some(role) = self.effective(role) else { return Ok(false) };
        Ok(self.tenant(tenant).await?.as_ref().as_ref().is_some_and(|t| t.admin_roles.contains(role)))
    }

    /// Whether `role` may do `action` on `topic` (a topic or a partition).
    pub async fn allows(&self, role: Option<&str>, action: Action, topic: &TopicName) -> Result<bool, TopicError> {
        if self.is_tenant_admin(role, &topic.tenant).await? {
            return Ok(true);
        }
        let Some(role) = self.effective(role) else { return Ok(false) };
        if action == Action::Admin {
            return Ok(false);
        }
        let policies = self.namespace(&topic.namespace_path()).await?;
        let Some(policies) = policies.as_ref() else { return Ok(false) };
        let base = topic.base().to_string();
        let granted = |actions: &std::collections::BTreeSet<String>| match action.grant_name() {
            Some(name) => actions.contains(name),
            // Looking up needs either right.
            None => actions.contains("produce") || actions.contains("consume"),
        };
        Ok(policies.namespace_auth.get(role).is_some_and(granted)
            || policies.destination_auth.get(&base).and_then(|roles| roles.get(role)).is_some_and(granted))
    }

    /// Whether `role` may do `action` on every topic of `namespace`
    /// (`tenant/ns`): what namespace-wide operations (listing, a group's
    /// offsets) ask.
    pub async fn allows_namespace(
        &self,
        role: Option<&str>,
        action: Action,
        namespace: &str,
    ) -> Result<bool, TopicError> {
        let tenant = namespace.split('/').next().unwrap_or_default();
        if self.is_tenant_admin(role, tenant).await? {
            return Ok(true);
        }
        let Some(role) = self.effective(role) else { return Ok(false) };
        if action == Action::Admin {
            return Ok(false);
        }
        let policies = self.namespace(namespace).await?;
        let Some(policies) = policies.as_ref() else { return Ok(false) };
        Ok(policies.namespace_auth.get(role).is_some_and(|actions| match action.grant_name() {
            Some(name) => actions.contains(name),
            None => actions.contains("produce") || actions.contains("consume"),
        }))
    }
}
