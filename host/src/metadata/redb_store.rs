//! The embedded metadata store, on redb.
//!
//! Why redb: pure Rust (no C library to build), ACID transactions whose commit
//! is crash safe by design (copy-on-write B-trees with checksummed commit
//! slots), one file, and a stable documented format. Metadata is small and
//! written rarely (topic creation, policy changes), so one fsync'd
//! transaction per write is fine.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Expect, MetadataError, MetadataStore, Versioned};

/// Values are stored as `[version: u64 LE][bytes]`.
const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("metadata");

/// A [`MetadataStore`] in one redb file.
pub struct RedbStore {
    db: Database,
}

fn err(e: impl std::fmt::Display) -> MetadataError {
    MetadataError::Store(e.to_string())
}

fn split(raw: &[u8]) -> Result<Versioned, MetadataError> {
    let (version, value) = raw.split_at_checked(8).ok_or_else(|| err("value shorter than its version"))?;
    let version = u64::from_le_bytes(version.try_into().map_err(err)?);
    Ok(Versioned { value: value.to_vec(), version })
}

impl RedbStore {
    /// Opens or creates the store at `path`.
    pub fn open(path: &Path) -> Result<Self, MetadataError> {
        let db = Database::create(path).map_err(|e| MetadataError::Store(format!("{}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(TABLE).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(Self { db })
    }
}

fn check(key: &str, expect: Expect, found: Option<u64>) -> Result<(), MetadataError> {
    let ok = match expect {
        Expect::Any => true,
        Expect::Absent => found.is_none(),
        Expect::Version(v) => found == Some(v),
    };
    if ok {
        Ok(())
    } else {
        Err(MetadataError::Conflict { key: key.to_owned(), expected: expect, found })
    }
}

impl MetadataStore for RedbStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, MetadataError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(TABLE).map_err(err)?;
        let value = table.get(key).map_err(err)?;
        value.map(|v| split(v.value())).transpose()
    }

    fn put(&self, key: &str, value: &[u8], expect: Expect) -> Result<u64, MetadataError> {
        let txn = self.db.begin_write().map_err(err)?;
        let version = {
            let mut table = txn.open_table(TABLE).map_err(err)?;
            let found = table.get(key).map_err(err)?.map(|v| split(v.value())).transpose()?.map(|v| v.version);
            check(key, expect, found)?;
            let version = found.unwrap_or(0) + 1;
            let mut raw = version.to_le_bytes().to_vec();
            raw.extend_from_slice(value);
            table.insert(key, raw.as_slice()).map_err(err)?;
            version
        };
        txn.commit().map_err(err)?;
        Ok(version)
    }

    fn delete(&self, key: &str, expect: Expect) -> Result<(), MetadataError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut table = txn.open_table(TABLE).map_err(err)?;
            let found = table.get(key).map_err(err)?.map(|v| split(v.value())).transpose()?.map(|v| v.version);
            if expect != Expect::Any || found.is_some() {
                check(key, expect, found)?;
            }
            table.remove(key).map_err(err)?;
        }
        txn.commit().map_err(err)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, MetadataError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(TABLE).map_err(err)?;
        let mut keys = Vec::new();
        for item in table.range(prefix..).map_err(err)? {
            let (k, _) = item.map_err(err)?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            keys.push(key.to_owned());
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_conformance_suite_passes_and_data_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(RedbStore::open(&dir.path().join("m.redb")).expect("open"));
        super::super::conformance::check(store.clone(), "/conformance/");
        store.put("/kept", b"k", Expect::Absent).expect("put");
        drop(store);
        let store = RedbStore::open(&dir.path().join("m.redb")).expect("reopen");
        assert_eq!(store.get("/kept").expect("get"), Some(Versioned { value: b"k".to_vec(), version: 1 }));
    }
}
