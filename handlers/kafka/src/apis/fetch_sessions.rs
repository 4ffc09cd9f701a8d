//! Fetch sessions (KIP-227): a consumer that fetches many partitions sends,
//! after a first full request, only the partitions whose fetch position
//! changed; the broker remembers the rest and answers with only the
//! partitions that have news (records, an error, a moved high watermark or
//! log start offset).
//!
//! Sessions belong to the handler (a client may reconnect), at most
//! [`MAX_SESSIONS`] of them; the least recently used goes first. Their ids
//! are random (31 bits, as Kafka's), so that no client can name, and so
//! read or disturb, another client's session by guessing the next number.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use crate::errors;

/// Sessions kept at once.
pub const MAX_SESSIONS: usize = 1000;

/// A partition as the session remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    /// Where the client fetches from.
    pub fetch_offset: i64,
    /// Its per-partition byte limit.
    pub max_bytes: i32,
    /// The high watermark last sent (-1: nothing sent yet).
    pub high_watermark: i64,
    /// The log start offset last sent.
    pub log_start: i64,
}

/// (topic, partition).
pub type Key = (String, i32);

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    epoch: i32,
    partitions: BTreeMap<Key, PartitionState>,
    last_used: u64,
}

/// What a fetch request asks of the session cache.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// A full fetch without a session (session id 0 in the answer).
    Sessionless,
    /// A full fetch that opens session `id` with the requested partitions.
    New {
        /// The new session's id.
        id: i32,
    },
    /// An incremental fetch: every partition of the session, updates applied.
    Incremental {
        /// The session.
        id: i32,
        /// All its partitions.
        partitions: Vec<(Key, PartitionState)>,
    },
    /// The request names a session that is gone or is out of step.
    Error(i16),
}

/// The handler's fetch sessions.
#[derive(Debug)]
pub struct FetchSessions {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    clock: u64,
    sessions: HashMap<i32, Session>,
}

impl Default for FetchSessions {
    fn default() -> Self {
        Self { inner: Mutex::new(Inner { clock: 0, sessions: HashMap::new() }) }
    }
}

/// A random session id, above 0.
fn random_id() -> i32 {
    // The low 31 bits of a random (v4) UUID.
    (uuid::Uuid::new_v4().as_u128() & 0x7fff_ffff) as i32
}

impl FetchSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Plans a request with `session_id` and `epoch` (KIP-227's rules):
    /// `requested` are the partitions it carries (topic, partition, fetch
    /// offset, max bytes), `forgotten` those it drops from the session.
    pub fn begin(&self, session_id: i32, epoch: i32, requested: &[(Key, i64, i32)], forgotten: &[Key]) -> Plan {
        let mut inner = self.lock();
        inner.clock += 1;
        let clock = inner.clock;
        match (session_id, epoch) {
            (0, -1) => Plan::Sessionless,
            (id, -1) => {
                inner.sessions.remove(&id);
                Plan::Sessionless
            }
            (id, 0) => {
                inner.sessions.remove(&id);
                if inner.sessions.len() >= MAX_SESSIONS {
                    if let Some(oldest) = inner.sessions.iter().min_by_key(|(_, s)| s.last_used).map(|(id, _)| *id) {
                        inner.sessions.remove(&oldest);
                    }
                }
                let mut new_id = random_id();
                while new_id == 0 || inner.sessions.contains_key(&new_id) {
                    new_id = random_id();
                }
                let partitions = requested
                    .iter()
                    .map(|(key, offset, max)| {
                        let state = PartitionState {
                            fetch_offset: *offset,
                            max_bytes: *max,
                            high_watermark: -1,
                            log_start: -1,
                        };
                        (key.clone(), state)
                    })
                    .collect();
                inner.sessions.insert(new_id, Session { epoch: 1, partitions, last_used: clock });
                Plan::New { id: new_id }
            }
            (id, epoch) => {
                let Some(session) = inner.sessions.get_mut(&id) else {
                    return Plan::Error(errors::FETCH_SESSION_ID_NOT_FOUND);
                };
                if session.epoch != epoch {
                    return Plan::Error(errors::INVALID_FETCH_SESSION_EPOCH);
                }
                session.epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
                session.last_used = clock;
                for key in forgotten {
                    session.partitions.remove(key);
                }
                for (key, offset, max) in requested {
                    let entry = session.partitions.entry(key.clone()).or_insert(PartitionState {
                        fetch_offset: *offset,
                        max_bytes: *max,
                        high_watermark: -1,
                        log_start: -1,
                    });
                    entry.fetch_offset = *offset;
                    entry.max_bytes = *max;
                }
                Plan::Incremental { id, partitions: session.partitions.iter().map(|(k, v)| (k.clone(), *v)).collect() }
            }
        }
    }

    /// Records what was sent for `key` in session `id`; returns whether the
    /// client had not seen it (new high watermark or log start).
    pub fn sent(&self, id: i32, key: &Key, high_watermark: i64, log_start: i64) -> bool {
        let mut inner = self.lock();
        let Some(state) = inner.sessions.get_mut(&id).and_then(|s| s.partitions.get_mut(key)) else { return true };
        let changed = state.high_watermark != high_watermark || state.log_start != log_start;
        state.high_watermark = high_watermark;
        state.log_start = log_start;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: &str, p: i32) -> Key {
        (t.to_owned(), p)
    }

    #[test]
    fn sessions_follow_kip_227() {
        let s = FetchSessions::default();
        assert_eq!(s.begin(0, -1, &[], &[]), Plan::Sessionless);
        let Plan::New { id } = s.begin(0, 0, &[(key("a", 0), 5, 100), (key("a", 1), 0, 100)], &[]) else { panic!() };
        assert!(id > 0);
        let Plan::New { id: other } = s.begin(0, 0, &[], &[]) else { panic!() };
        assert!(other > 0 && other != id && other.abs_diff(id) > 1, "ids {id} and {other} are not consecutive");
        assert!(s.sent(id, &key("a", 0), 10, 0), "first answer: new");
        assert!(!s.sent(id, &key("a", 0), 10, 0), "nothing moved");
        match s.begin(id, 1, &[(key("a", 0), 10, 100)], &[key("a", 1)]) {
            Plan::Incremental { partitions, .. } => {
                assert_eq!(partitions.len(), 1);
                assert_eq!(partitions[0].1.fetch_offset, 10);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.begin(id, 1, &[], &[]), Plan::Error(errors::INVALID_FETCH_SESSION_EPOCH));
        let unknown = (1..).find(|n| *n != id && *n != other).expect("an unused id");
        assert_eq!(s.begin(unknown, 1, &[], &[]), Plan::Error(errors::FETCH_SESSION_ID_NOT_FOUND));
        assert_eq!(s.begin(id, -1, &[], &[]), Plan::Sessionless);
        assert_eq!(s.begin(id, 2, &[], &[]), Plan::Error(errors::FETCH_SESSION_ID_NOT_FOUND), "closed");
    }
}
