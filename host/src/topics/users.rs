//! SCRAM credentials in the metadata store, one key per user:
//! `/admin/scram-credentials/<user, base64url>` holding each mechanism's
//! salt, stored key, server key and iterations (never a password, nor a
//! salted one). Kept beside the tenants so that every broker of a cluster
//! authenticates the same users.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::{blocking, TopicError, Topics};
use crate::{
    metadata::{Expect, MetadataError},
    security::scram::Credential,
};

const PREFIX: &str = "/admin/scram-credentials/";

/// A user's credentials, by mechanism name.
pub type UserCredentials = BTreeMap<String, Credential>;

fn key(user: &str) -> String {
    format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user))
}

fn user_of(key: &str) -> Option<String> {
    let encoded = key.strip_prefix(PREFIX)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).ok()?;
    String::from_utf8(bytes).ok()
}

fn parse(key: &str, bytes: &[u8]) -> Result<UserCredentials, TopicError> {
    serde_json::from_slice(bytes).map_err(|e| TopicError::Metadata(MetadataError::Store(format!("{key}: {e}"))))
}

impl Topics {
    /// `user`'s credentials (empty when it has none).
    pub async fn scram_credentials(&self, user: &str) -> Result<UserCredentials, TopicError> {
        let store = std::sync::Arc::clone(&self.store);
        let key = key(user);
        let raw = blocking(move || store.get(&key).map(|v| v.map(|v| (key, v.value)))).await??;
        match raw {
            None => Ok(UserCredentials::new()),
            Some((key, bytes)) => parse(&key, &bytes),
        }
    }

    /// Every user with credentials.
    pub async fn scram_users(&self) -> Result<Vec<String>, TopicError> {
        let store = std::sync::Arc::clone(&self.store);
        let keys = blocking(move || store.list(PREFIX)).await??;
        Ok(keys.iter().filter_map(|k| user_of(k)).collect())
    }

    /// Sets (`Some`) or deletes (`None`) `user`'s credential for
    /// `mechanism`; deleting a missing one is [`TopicError::NotFound`].
    pub async fn set_scram_credential(
        &self,
        user: &str,
        mechanism: &str,
        credential: Option<Credential>,
    ) -> Result<(), TopicError> {
        let store = std::sync::Arc::clone(&self.store);
        let (key, user, mechanism) = (key(user), user.to_owned(), mechanism.to_owned());
        blocking(move || loop {
            let current = store.get(&key)?;
            let mut all = match &current {
                None => UserCredentials::new(),
                Some(v) => parse(&key, &v.value)?,
            };
            match &credential {
                Some(c) => {
                    all.insert(mechanism.clone(), c.clone());
                }
                None => {
                    if all.remove(&mechanism).is_none() {
                        return Err(TopicError::NotFound(format!("{mechanism} credential of user {user}")));
                    }
                }
            }
            let expect = current.as_ref().map_or(Expect::Absent, |v| Expect::Version(v.version));
            let written = if all.is_empty() {
                store.delete(&key, expect).map(|()| 0)
            } else {
                let bytes = serde_json::to_vec(&all).map_err(|e| MetadataError::Store(e.to_string()))?;
                store.put(&key, &bytes, expect)
            };
            match written {
                Ok(_) => return Ok(()),
                Err(MetadataError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        })
        .await?
    }
}
