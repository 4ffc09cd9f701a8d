//! Topic names as Pulsar writes them: `persistent://tenant/namespace/topic`,
//! with partitions named `topic-partition-N`. Short forms are accepted:
//! `topic` (in `public/default`) and `tenant/namespace/topic`.

use std::fmt;

/// Marks a partition of a partitioned topic.
pub const PARTITION_SUFFIX: &str = "-partition-";

/// A validated topic name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName {
    /// The tenant.
    pub tenant: String,
    /// The namespace within the tenant.
    pub namespace: String,
    /// The topic's local name (a partition's includes `-partition-N`).
    pub local: String,
}

/// Why a name is not a valid topic name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic name {name:?}: {reason}")]
pub struct InvalidName {
    /// The name given.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

pub(crate) fn valid_segment(s: &str) -> bool {
    s != "."
        && s != ".."
        && !s.is_empty()
        && s.len() <= 255
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | ':'))
}

impl TopicName {
    /// Parses and validates `name`.
    pub fn parse(name: &str) -> Result<Self, InvalidName> {
        let invalid = |reason: &str| InvalidName { name: name.to_owned(), reason: reason.to_owned() };
        let rest = if let Some(rest) = name.strip_prefix("persistent://") {
            rest
        } else if name.starts_with("non-persistent://") {
            return Err(invalid("non-persistent topics are not supported"));
        } else if name.contains("://") {
            return Err(invalid("the domain must be persistent://"));
        } else {
            name
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let (tenant, namespace, local) = match parts.as_slice() {
            [local] if !name.starts_with("persistent://") => ("public", "default", *local),
            [tenant, namespace, local] => (*tenant, *namespace, *local),
            _ => return Err(invalid("expected persistent://tenant/namespace/topic, tenant/namespace/topic or topic")),
        };
        if !valid_segment(tenant) {
            return Err(invalid("the tenant must be 1-255 characters among letters, digits and - _ . = :"));
        }
        if !valid_segment(namespace) {
            return Err(invalid("the namespace must be 1-255 characters among letters, digits and - _ . = :"));
        }
        if local.is_empty()
            || local == "."
            || local == ".."
            || local.len() > 255
            || local.chars().any(|c| c.is_control() || c == '/')
        {
            return Err(invalid("the topic must be 1-255 characters, without '/' or control characters"));
        }
        Ok(Self { tenant: tenant.to_owned(), namespace: namespace.to_owned(), local: local.to_owned() })
    }

    /// `tenant/namespace`.
    pub fn namespace_path(&self) -> String {
        format!("{}/{}", self.tenant, self.namespace)
    }

    /// The partition number if this names a partition (`x-partition-N`).
    pub fn partition(&self) -> Option<(String, u32)> {
        let (base, n) = self.local.rsplit_once(PARTITION_SUFFIX)?;
        if base.is_empty()
            || n.is_empty()
            || !n.bytes().all(|b| b.is_ascii_digit())
            || (n.len() > 1 && n.starts_with('0'))
        {
            return None;
        }
        Some((base.to_owned(), n.parse().ok()?))
    }

    /// The topic that holds this partition (or this name itself).
    pub fn base(&self) -> TopicName {
        match self.partition() {
            Some((base, _)) => TopicName { local: base, ..self.clone() },
            None => self.clone(),
        }
    }

    /// Partition `n` of this topic.
    pub fn partition_name(&self, n: u32) -> TopicName {
        TopicName { local: format!("{}{PARTITION_SUFFIX}{n}", self.local), ..self.clone() }
    }

    /// The directory name for the local name: `%`-escapes anything outside `[A-Za-z0-9._=-]`.
    pub fn file_name(&self) -> String {
        let mut out = String::with_capacity(self.local.len());
        for b in self.local.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'=') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "persistent://{}/{}/{}", self.tenant, self.namespace, self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_full_forms() {
        let full = TopicName::parse("persistent://public/default/orders").expect("valid");
        assert_eq!(TopicName::parse("orders").expect("valid"), full);
        assert_eq!(TopicName::parse("public/default/orders").expect("valid"), full);
        assert_eq!(full.to_string(), "persistent://public/default/orders");
        let p = TopicName::parse("t/n/orders-partition-3").expect("valid");
        assert_eq!(p.partition(), Some(("orders".into(), 3)));
        assert_eq!(p.base().local, "orders");
        assert_eq!(TopicName::parse("x-partition-03").expect("valid").partition(), None);
        assert_eq!(TopicName::parse("a b").expect("valid").file_name(), "a%20b");
    }

    #[test]
    fn invalid_names_say_why() {
        for bad in [
            "",
            "..",
            "a/b/..",
            "a/../b",
            "a/b",
            "persistent://a/b",
            "non-persistent://a/b/c",
            "http://a/b/c",
            "a/b c/d",
            "a/b/c/d",
        ] {
            let e = TopicName::parse(bad).expect_err(bad);
            assert!(!e.reason.is_empty(), "{bad}");
        }
    }
}
