//! One consumer group: Kafka's classic group protocol as a synchronous state
//! machine.
//!
//! The group is owned by exactly one task (its coordinator partition, see
//! [`super::partition`]); nothing here does I/O or reads a clock. Calls take
//! `now` (monotonic milliseconds) and answer delayed requests (JoinGroup
//! waiting for the rebalance, SyncGroup waiting for the leader) through the
//! oneshot senders they were given, so the state machine can be driven and
//! tested without a runtime.
//!
//! States, as Kafka names them: `Empty` (no members; may hold offsets),
//! `PreparingRebalance` (collecting joins), `CompletingRebalance` (waiting for
//! the leader's assignment), `Stable`. A group removed by DeleteGroups or
//! offset expiry is simply dropped by its owner (Kafka's `Dead`).

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::{Buf, Bytes};
use kafka_protocol::{messages::ConsumerProtocolSubscription, protocol::Decodable};
use tokio::sync::oneshot;

use crate::errors;

/// Group settings from broker.conf.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `groupMinSessionTimeoutMs`.
    pub min_session_timeout_ms: i32,
    /// `groupMaxSessionTimeoutMs`.
    pub max_session_timeout_ms: i32,
    /// `groupInitialRebalanceDelayMs`: how long the first rebalance of an
    /// empty group waits for more members.
    pub initial_rebalance_delay_ms: u64,
    /// `offsetsRetentionMinutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `offsetMetadataMaxSize`: the largest commit metadata string.
    pub max_metadata_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        // Kafka's defaults.
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            max_metadata_bytes: 4096,
        }
    }
}

/// The group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No members.
    Empty,
    /// A rebalance is collecting joins.
    PreparingRebalance,
    /// Joins are complete; waiting for the leader's SyncGroup.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl State {
    /// The name Kafka's tools show.
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

/// A JoinGroup, as the state machine needs it.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    /// Empty on a first join.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// The client's id and address, for DescribeGroups.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// How long a rebalance may wait for this member.
    pub rebalance_timeout_ms: i32,
    /// "consumer" for consumers.
    pub protocol_type: String,
    /// The assignors the member supports, preferred first, with its subscription.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a first join gets MEMBER_ID_REQUIRED and a member id.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader may skip the assignment.
    pub supports_skip_assignment: bool,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Its subscription for the chosen protocol.
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinOutcome {
    /// Error code.
    pub error: i16,
    /// The new generation.
    pub generation: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen assignor.
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// The member's id.
    pub member_id: String,
    /// Every member, for the leader only.
    pub members: Vec<JoinedMember>,
    /// The leader keeps the current assignment (static leader rejoining).
    pub skip_assignment: bool,
}

impl JoinOutcome {
    /// An answer carrying only `error`.
    pub(crate) fn error(error: i16, member_id: &str) -> Self {
        Self { error, generation: -1, member_id: member_id.to_owned(), ..Self::default() }
    }
}

/// A SyncGroup.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// The generation the member joined.
    pub generation: i32,
    /// v5+: must match the group's, when given.
    pub protocol_type: Option<String>,
    /// v5+: must match the group's, when given.
    pub protocol: Option<String>,
    /// The leader's assignment, per member.
    pub assignments: Vec<(String, Bytes)>,
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Error code.
    pub error: i16,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen assignor.
    pub protocol: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncOutcome {
    /// An answer carrying only `error`.
    pub(crate) fn error(error: i16) -> Self {
        Self { error, ..Self::default() }
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The offset of the next message to consume.
    pub offset: i64,
    /// The leader epoch the client sent (-1 when none).
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When it was committed, Unix ms.
    pub commit_ms: i64,
    /// The partition's ledger, where the group's cursor mirrors it.
    pub ledger: String,
}

/// The key of a committed offset: the Pulsar topic and the Kafka partition.
pub type OffsetKey = (String, i32);

/// A member of the group.
#[derive(Debug)]
pub struct Member {
    /// Member id.
    pub id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Supported assignors with subscriptions, preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// Current assignment (empty until the leader syncs).
    pub assignment: Bytes,
    /// Join order: the earliest member leads.
    seq: u64,
    /// The session expires at this monotonic time unless the member heartbeats.
    session_deadline: u64,
    join_reply: Option<oneshot::Sender<JoinOutcome>>,
    sync_reply: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(name, _)| name == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    fn touch(&mut self, now: u64) {
        self.session_deadline = now + self.session_timeout_ms.max(0) as u64;
    }
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Subscription (only in Stable).
    pub metadata: Bytes,
    /// Assignment (only in Stable).
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// State name.
    pub state: &'static str,
    /// Protocol type ("" for groups that only commit offsets).
    pub protocol_type: String,
    /// The chosen assignor (only in Stable).
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// What the owner must persist about a group (its metadata record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Protocol type.
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// Chosen assignor.
    pub protocol: String,
    /// Leader member id.
    pub leader: String,
    /// When the group entered its state, Unix ms.
    pub state_since_ms: i64,
    /// Members of the stable generation.
    pub members: Vec<StoredMember>,
}

/// A member as stored in the group's metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    /// Member id.
    pub id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Subscription for the chosen protocol.
    pub subscription: Bytes,
    /// Assignment.
    pub assignment: Bytes,
}

/// One consumer group.
#[derive(Debug)]
pub struct Group {
    id: String,
    state: State,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: HashMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their deadline.
    pending: HashMap<String, u64>,
    /// Static members: instance id to member id.
    statics: HashMap<String, String>,
    /// Members that have not sent SyncGroup since the join completed.
    pending_sync: HashSet<String>,
    /// PreparingRebalance: the join completes at the latest then.
    join_deadline: Option<u64>,
    /// PreparingRebalance of an empty group: the initial delay ends then...
    initial_delay_end: Option<u64>,
    /// ...but never later than this.
    initial_delay_limit: u64,
    /// CompletingRebalance: members that have not synced are removed then.
    sync_deadline: Option<u64>,
    /// When the group entered its state, Unix ms (offset expiry counts from it).
    state_since_ms: i64,
    next_seq: u64,
    /// `groupInitialRebalanceDelayMs`.
    initial_delay_ms: u64,
    /// The group's metadata changed and must be persisted.
    dirty: bool,
    /// Committed offsets.
    pub offsets: BTreeMap<OffsetKey, Committed>,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: String, initial_delay_ms: u64, wall_ms: i64) -> Self {
        Self {
            id,
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: HashMap::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            pending_sync: HashSet::new(),
            join_deadline: None,
            initial_delay_end: None,
            initial_delay_limit: 0,
            sync_deadline: None,
            state_since_ms: wall_ms,
            next_seq: 0,
            initial_delay_ms,
            dirty: false,
            offsets: BTreeMap::new(),
        }
    }

    /// Restores a group from its metadata record: the stored generation's
    /// members are back with fresh sessions, so live clients carry on and dead
    /// ones expire.
    pub fn restore(id: String, snapshot: Snapshot, initial_delay_ms: u64, now: u64) -> Self {
        let mut group = Self::new(id, initial_delay_ms, snapshot.state_since_ms);
        group.generation = snapshot.generation;
        group.protocol_type = Some(snapshot.protocol_type).filter(|t| !t.is_empty());
        group.protocol = Some(snapshot.protocol).filter(|p| !p.is_empty());
        group.leader = Some(snapshot.leader).filter(|l| !l.is_empty());
        let protocol = group.protocol.clone().unwrap_or_default();
        for m in snapshot.members {
            if let Some(instance) = &m.instance_id {
                group.statics.insert(instance.clone(), m.id.clone());
            }
            let seq = group.next_seq;
            group.next_seq += 1;
            let mut member = Member {
                id: m.id.clone(),
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                seq,
                session_deadline: 0,
                join_reply: None,
                sync_reply: None,
            };
            member.touch(now);
            group.members.insert(m.id, member);
        }
        if !group.members.is_empty() {
            group.state = State::Stable;
        }
        group
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The current generation.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The protocol type ("" when none).
    pub fn protocol_type(&self) -> &str {
        self.protocol_type.as_deref().unwrap_or("")
    }

    /// Whether the group has members.
    pub fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    /// Whether the group's metadata changed since the last call (and clears it).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The group's metadata record.
    pub fn snapshot(&self) -> Snapshot {
        let protocol = self.protocol.clone().unwrap_or_default();
        let stable = self.state == State::Stable;
        Snapshot {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            state_since_ms: self.state_since_ms,
            // Only a stable generation is worth restoring; others rejoin.
            members: if stable {
                self.sorted_members()
                    .map(|m| StoredMember {
                        id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        session_timeout_ms: m.session_timeout_ms,
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        subscription: m.metadata_for(&protocol),
                        assignment: m.assignment.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn sorted_members(&self) -> impl Iterator<Item = &Member> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        members.into_iter()
    }

    fn new_member_id(&self, client_id: &str, wall_ms: i64) -> String {
        // Kafka uses client id + UUID; ours only has to be unique per group,
        // across restarts (hence the clock) and within one (hence the sequence).
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&(&self.id, wall_ms, self.next_seq, self.members.len(), self.pending.len()), &mut hasher);
        let tag = std::hash::Hasher::finish(&hasher);
        let client = if client_id.is_empty() { "member" } else { client_id };
        format!("{client}-{:012x}-{tag:016x}", wall_ms as u64 & 0xffff_ffff_ffff)
    }

    fn set_state(&mut self, state: State, wall_ms: i64) {
        if self.state != state {
            self.state = state;
            self.state_since_ms = wall_ms;
        }
    }

    // ---- JoinGroup ----------------------------------------------------------

    /// Handles a JoinGroup; the reply is sent now or when the rebalance completes.
    pub fn join(
        &mut self,
        config: &GroupConfig,
        request: JoinRequest,
        reply: oneshot::Sender<JoinOutcome>,
        now: u64,
        wall_ms: i64,
    ) {
        let member_id = request.member_id.clone();
        if request.session_timeout_ms < config.min_session_timeout_ms
            || request.session_timeout_ms > config.max_session_timeout_ms
        {
            let _ = reply.send(JoinOutcome::error(errors::INVALID_SESSION_TIMEOUT, &member_id));
            return;
        }
        if !self.supports(&request) {
            let _ = reply.send(JoinOutcome::error(errors::INCONSISTENT_GROUP_PROTOCOL, &member_id));
            return;
        }
        if member_id.is_empty() {
            self.join_unknown(request, reply, now, wall_ms);
        } else {
            self.join_known(request, reply, now, wall_ms);
        }
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty
    /// protocol list; otherwise the type must match and one protocol must be
    /// supported by every member.
    fn supports(&self, request: &JoinRequest) -> bool {
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return false;
        }
        // The member itself may be rejoining: it does not vote against itself.
        let others: Vec<&Member> = self.members.values().filter(|m| m.id != request.member_id).collect();
        if others.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(request.protocol_type.as_str()) {
            return false;
        }
        request.protocols.iter().any(|(name, _)| others.iter().all(|m| m.protocols.iter().any(|(p, _)| p == name)))
    }

    fn join_unknown(&mut self, request: JoinRequest, reply: oneshot::Sender<JoinOutcome>, now: u64, wall_ms: i64) {
        let new_id = self.new_member_id(&request.client_id, wall_ms);
        self.next_seq += 1;
        if let Some(instance) = request.instance_id.clone() {
            if let Some(old_id) = self.statics.get(&instance).cloned() {
                if self.members.contains_key(&old_id) {
                    self.replace_static_member(&old_id, new_id, request, reply, now, wall_ms);
                    return;
                }
            }
            // A new static member joins without the MEMBER_ID_REQUIRED round trip.
            self.statics.insert(instance, new_id.clone());
            self.add_member_and_rebalance(new_id, request, reply, now, wall_ms);
            return;
        }
        if request.require_known_member_id {
            self.pending.insert(new_id.clone(), now + request.session_timeout_ms.max(0) as u64);
            let _ = reply.send(JoinOutcome::error(errors::MEMBER_ID_REQUIRED, &new_id));
            return;
        }
        self.add_member_and_rebalance(new_id, request, reply, now, wall_ms);
    }

    /// A static member rejoined with an empty member id: it takes over its
    /// instance's place under a new id, and the old id is fenced.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        request: JoinRequest,
        reply: oneshot::Sender<JoinOutcome>,
        now: u64,
        wall_ms: i64,
    ) {
        let Some(mut member) = self.members.remove(old_id) else { return };
        if let Some(old) = member.join_reply.take() {
            let _ = old.send(JoinOutcome::error(errors::FENCED_INSTANCE_ID, old_id));
        }
        if let Some(old) = member.sync_reply.take() {
            let _ = old.send(SyncOutcome::error(errors::FENCED_INSTANCE_ID));
        }
        let was_pending_sync = self.pending_sync.remove(old_id);
        let protocols_changed = self.protocol.as_deref().is_some_and(|p| {
            let old = member.metadata_for(p);
            request.protocols.iter().find(|(n, _)| n == p).map(|(_, m)| m) != Some(&old)
        });
        member.id = new_id.clone();
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.protocols = request.protocols.clone();
        member.touch(now);
        if let Some(instance) = &member.instance_id {
            self.statics.insert(instance.clone(), new_id.clone());
        }
        if was_pending_sync {
            self.pending_sync.insert(new_id.clone());
        }
        let was_leader = self.leader.as_deref() == Some(old_id);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        self.dirty = true;
        match self.state {
            State::Stable if !protocols_changed => {
                // KIP-345: no rebalance. A leader gets the members; from
                // JoinGroup v9 it is told to keep the current assignment
                // (KIP-814), before that the assignment it syncs is ignored,
                // as Kafka does (SyncGroup in Stable answers the current one).
                let members = if was_leader { self.joined_members() } else { Vec::new() };
                let _ = reply.send(JoinOutcome {
                    error: errors::NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: self.protocol.clone(),
                    leader: self.leader.clone().unwrap_or_default(),
                    member_id: new_id,
                    members,
                    skip_assignment: was_leader && request.supports_skip_assignment,
                });
            }
            State::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.join_reply = Some(reply);
                }
                self.try_complete_join(now, wall_ms);
            }
            _ => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.join_reply = Some(reply);
                }
                self.prepare_rebalance(now, wall_ms);
            }
        }
    }

    fn join_known(&mut self, request: JoinRequest, reply: oneshot::Sender<JoinOutcome>, now: u64, wall_ms: i64) {
        let member_id = request.member_id.clone();
        if self.pending.remove(&member_id).is_some() {
            self.add_member_and_rebalance(member_id, request, reply, now, wall_ms);
            return;
        }
        if let Err(code) = self.check_member(&member_id, request.instance_id.as_deref()) {
            let _ = reply.send(JoinOutcome::error(code, &member_id));
            return;
        }
        let selected = self.protocol.clone();
        let Some(member) = self.members.get_mut(&member_id) else { return };
        // Unchanged: the same subscription for the chosen assignor (a member
        // restored after a restart knows only that one).
        let unchanged = match &selected {
            Some(p) => {
                let theirs = request.protocols.iter().find(|(n, _)| n == p).map(|(_, m)| m);
                theirs.is_some() && theirs == member.protocols.iter().find(|(n, _)| n == p).map(|(_, m)| m)
            }
            None => member.protocols == request.protocols,
        };
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.protocols = request.protocols;
        member.touch(now);
        match self.state {
            State::PreparingRebalance => {
                if let Some(old) = member.join_reply.replace(reply) {
                    let _ = old.send(JoinOutcome::error(errors::REBALANCE_IN_PROGRESS, &member_id));
                }
                self.try_complete_join(now, wall_ms);
            }
            // The member lost the response to its join: send it again.
            State::CompletingRebalance if unchanged => {
                let outcome = self.join_outcome(&member_id);
                let _ = reply.send(outcome);
            }
            State::Stable if unchanged && self.leader.as_deref() != Some(member_id.as_str()) => {
                let outcome = self.join_outcome(&member_id);
                let _ = reply.send(outcome);
            }
            _ => {
                member.join_reply = Some(reply);
                self.prepare_rebalance(now, wall_ms);
            }
        }
    }

    /// UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID for a member that is not who it says.
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        if let Some(instance) = instance_id {
            match self.statics.get(instance) {
                Some(current) if current != member_id => return Err(errors::FENCED_INSTANCE_ID),
                None if self.members.contains_key(member_id) => return Err(errors::FENCED_INSTANCE_ID),
                _ => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(errors::UNKNOWN_MEMBER_ID)
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        id: String,
        request: JoinRequest,
        reply: oneshot::Sender<JoinOutcome>,
        now: u64,
        wall_ms: i64,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut member = Member {
            id: id.clone(),
            instance_id: request.instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            protocols: request.protocols,
            assignment: Bytes::new(),
            seq,
            session_deadline: 0,
            join_reply: Some(reply),
            sync_reply: None,
        };
        member.touch(now);
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        self.members.insert(id, member);
        match self.state {
            State::PreparingRebalance => {
                if self.initial_delay_end.is_some() {
                    // Kafka's InitialDelayedJoin: each new member restarts the
                    // wait, up to the rebalance timeout.
                    self.initial_delay_end = Some(self.initial_delay_limit.min(now + self.initial_delay_ms));
                }
                self.try_complete_join(now, wall_ms);
            }
            _ => self.prepare_rebalance(now, wall_ms),
        }
    }

    fn max_rebalance_timeout(&self) -> u64 {
        self.members.values().map(|m| m.rebalance_timeout_ms.max(0) as u64).max().unwrap_or(0)
    }

    /// Starts a rebalance: members must rejoin.
    fn prepare_rebalance(&mut self, now: u64, wall_ms: i64) {
        if self.state == State::CompletingRebalance {
            // The assignment being made is obsolete.
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(r) = m.sync_reply.take() {
                    let _ = r.send(SyncOutcome::error(errors::REBALANCE_IN_PROGRESS));
                }
            }
            self.pending_sync.clear();
            self.sync_deadline = None;
        }
        let from_empty = self.state == State::Empty;
        self.set_state(State::PreparingRebalance, wall_ms);
        let timeout = self.max_rebalance_timeout();
        self.join_deadline = Some(now + timeout);
        if from_empty && self.initial_delay_ms > 0 {
            self.initial_delay_end = Some(now + self.initial_delay_ms);
            self.initial_delay_limit = now + timeout.max(self.initial_delay_ms);
        } else {
            self.initial_delay_end = None;
            self.try_complete_join(now, wall_ms);
        }
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_reply.is_some())
    }

    fn try_complete_join(&mut self, now: u64, wall_ms: i64) {
        if self.state == State::PreparingRebalance && self.initial_delay_end.is_none() && self.all_joined() {
            self.complete_join(now, wall_ms);
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, the
    /// generation advances, everyone who joined gets their answer.
    fn complete_join(&mut self, now: u64, wall_ms: i64) {
        // Dynamic members that did not rejoin are dropped; static ones keep
        // their place until their session expires (KIP-345), so a rolling
        // restart does not cost a second rebalance.
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_reply.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.drop_member(&id);
        }
        self.pending.clear();
        self.join_deadline = None;
        self.initial_delay_end = None;
        self.generation += 1;
        self.dirty = true;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(State::Empty, wall_ms);
            return;
        }
        self.protocol = self.select_protocol();
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            let first = self.sorted_members().next().map(|m| m.id.clone());
            self.leader = first;
        }
        self.set_state(State::CompletingRebalance, wall_ms);
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        self.pending_sync = self.members.values().filter(|m| m.join_reply.is_some()).map(|m| m.id.clone()).collect();
        let ids: Vec<String> = self.sorted_members().map(|m| m.id.clone()).collect();
        for id in ids {
            let outcome = self.join_outcome(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.assignment = Bytes::new();
                m.touch(now);
                if let Some(reply) = m.join_reply.take() {
                    let _ = reply.send(outcome);
                }
            }
        }
    }

    fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.sorted_members()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    }

    fn join_outcome(&self, member_id: &str) -> JoinOutcome {
        let leader = self.leader.clone().unwrap_or_default();
        JoinOutcome {
            error: errors::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            members: if leader == member_id { self.joined_members() } else { Vec::new() },
            leader,
            member_id: member_id.to_owned(),
            skip_assignment: false,
        }
    }

    /// The protocol every member supports with the most first-choice votes
    /// (ties go to the leader's preference order).
    fn select_protocol(&self) -> Option<String> {
        let members: Vec<&Member> = self.sorted_members().collect();
        let first = members.first()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| members.iter().all(|m| m.protocols.iter().any(|(p, _)| p == *name)))
            .collect();
        let votes = |name: &String| {
            members
                .iter()
                .filter(|m| m.protocols.iter().map(|(p, _)| p).find(|p| candidates.contains(p)) == Some(name))
                .count()
        };
        let mut best: Option<(&String, usize)> = None;
        for name in &candidates {
            let v = votes(name);
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((name, v));
            }
        }
        best.map(|(name, _)| name.clone())
    }

    /// Removes a member, answering what it was waiting for.
    fn drop_member(&mut self, id: &str) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some(r) = m.join_reply.take() {
                let _ = r.send(JoinOutcome::error(errors::UNKNOWN_MEMBER_ID, id));
            }
            if let Some(r) = m.sync_reply.take() {
                let _ = r.send(SyncOutcome::error(errors::UNKNOWN_MEMBER_ID));
            }
            if let Some(instance) = &m.instance_id {
                if self.statics.get(instance).is_some_and(|current| current == id) {
                    self.statics.remove(instance);
                }
            }
        }
        self.pending_sync.remove(id);
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        self.dirty = true;
    }

    /// A member left or expired: the others rebalance.
    fn remove_member_and_rebalance(&mut self, id: &str, now: u64, wall_ms: i64) {
        self.drop_member(id);
        match self.state {
            State::Stable | State::CompletingRebalance => self.prepare_rebalance(now, wall_ms),
            State::PreparingRebalance => self.try_complete_join(now, wall_ms),
            State::Empty => {}
        }
    }

    // ---- SyncGroup ----------------------------------------------------------

    /// Handles a SyncGroup; the reply is sent now or when the leader syncs.
    pub fn sync(&mut self, request: SyncRequest, reply: oneshot::Sender<SyncOutcome>, now: u64, wall_ms: i64) {
        if let Err(code) = self.check_member(&request.member_id, request.instance_id.as_deref()) {
            let _ = reply.send(SyncOutcome::error(code));
            return;
        }
        if request.generation != self.generation {
            let _ = reply.send(SyncOutcome::error(errors::ILLEGAL_GENERATION));
            return;
        }
        let mismatch = |given: &Option<String>, ours: &Option<String>| given.is_some() && given != ours;
        if mismatch(&request.protocol_type, &self.protocol_type) || mismatch(&request.protocol, &self.protocol) {
            let _ = reply.send(SyncOutcome::error(errors::INCONSISTENT_GROUP_PROTOCOL));
            return;
        }
        let outcome = |g: &Group, assignment: Bytes| SyncOutcome {
            error: errors::NONE,
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            assignment,
        };
        match self.state {
            State::Empty => {
                let _ = reply.send(SyncOutcome::error(errors::UNKNOWN_MEMBER_ID));
            }
            State::PreparingRebalance => {
                let _ = reply.send(SyncOutcome::error(errors::REBALANCE_IN_PROGRESS));
            }
            State::Stable => {
                let assignment = self.members.get_mut(&request.member_id).map(|m| {
                    m.touch(now);
                    m.assignment.clone()
                });
                let _ = reply.send(outcome(self, assignment.unwrap_or_default()));
            }
            State::CompletingRebalance => {
                self.pending_sync.remove(&request.member_id);
                if let Some(m) = self.members.get_mut(&request.member_id) {
                    m.touch(now);
                    if let Some(old) = m.sync_reply.replace(reply) {
                        let _ = old.send(SyncOutcome::error(errors::REBALANCE_IN_PROGRESS));
                    }
                }
                if self.leader.as_deref() == Some(request.member_id.as_str()) {
                    let mut assignments: HashMap<String, Bytes> = request.assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = assignments.remove(&m.id).unwrap_or_default();
                    }
                    self.set_state(State::Stable, wall_ms);
                    self.sync_deadline = None;
                    self.pending_sync.clear();
                    self.dirty = true;
                    let done = outcome(self, Bytes::new());
                    for m in self.members.values_mut() {
                        if let Some(r) = m.sync_reply.take() {
                            let _ = r.send(SyncOutcome { assignment: m.assignment.clone(), ..done.clone() });
                        }
                    }
                }
            }
        }
    }

    // ---- Heartbeat and LeaveGroup -------------------------------------------

    /// Handles a Heartbeat.
    pub fn heartbeat(&mut self, member_id: &str, instance_id: Option<&str>, generation: i32, now: u64) -> i16 {
        if let Err(code) = self.check_member(member_id, instance_id) {
            return code;
        }
        match self.state {
            State::Empty => errors::UNKNOWN_MEMBER_ID,
            _ if generation != self.generation && self.state != State::PreparingRebalance => errors::ILLEGAL_GENERATION,
            State::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.touch(now);
                }
                errors::REBALANCE_IN_PROGRESS
            }
            State::CompletingRebalance | State::Stable => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.touch(now);
                }
                errors::NONE
            }
        }
    }

    /// Handles one member of a LeaveGroup (by member id, or by instance id
    /// for static members).
    pub fn leave(&mut self, member_id: &str, instance_id: Option<&str>, now: u64, wall_ms: i64) -> i16 {
        let id = match instance_id {
            Some(instance) => match self.statics.get(instance) {
                None => return errors::UNKNOWN_MEMBER_ID,
                Some(current) if !member_id.is_empty() && current != member_id => return errors::FENCED_INSTANCE_ID,
                Some(current) => current.clone(),
            },
            None => member_id.to_owned(),
        };
        if self.pending.remove(&id).is_some() {
            self.try_complete_join(now, wall_ms);
            return errors::NONE;
        }
        if !self.members.contains_key(&id) {
            return errors::UNKNOWN_MEMBER_ID;
        }
        self.remove_member_and_rebalance(&id, now, wall_ms);
        errors::NONE
    }

    // ---- Offsets -------------------------------------------------------------

    /// Whether a member (or a standalone consumer, generation < 0) may commit.
    pub fn check_commit(&mut self, member_id: &str, instance_id: Option<&str>, generation: i32, now: u64) -> i16 {
        if generation < 0 && self.state == State::Empty {
            return errors::NONE;
        }
        if let Err(code) = self.check_member(member_id, instance_id) {
            return code;
        }
        if self.state == State::CompletingRebalance {
            return errors::REBALANCE_IN_PROGRESS;
        }
        if generation != self.generation {
            return errors::ILLEGAL_GENERATION;
        }
        // A commit counts as a heartbeat.
        if let Some(m) = self.members.get_mut(member_id) {
            m.touch(now);
        }
        errors::NONE
    }

    /// The topics some member subscribes to (consumer protocol only).
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type() != "consumer" || self.state == State::Empty {
            return None;
        }
        let protocol = self.protocol.clone()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            let mut metadata = m.metadata_for(&protocol);
            if metadata.len() < 2 {
                continue;
            }
            let version = metadata.get_i16();
            // An undecodable subscription: the caller treats None as "every
            // topic may be subscribed" and refuses to delete.
            let subscription = ConsumerProtocolSubscription::decode(&mut metadata, version.clamp(0, 3)).ok()?;
            topics.extend(subscription.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    /// Offsets whose retention ran out: for an empty consumer group, counted
    /// from when it became empty; for a group that only commits offsets,
    /// from each commit (Kafka's rules since 2.1).
    pub fn expired_offsets(&self, wall_ms: i64, retention_ms: i64) -> Vec<OffsetKey> {
        if self.state != State::Empty || retention_ms < 0 {
            return Vec::new();
        }
        let consumer_group = self.protocol_type.is_some();
        self.offsets
            .iter()
            .filter(|(_, c)| {
                let base = if consumer_group { self.state_since_ms.max(c.commit_ms) } else { c.commit_ms };
                base.saturating_add(retention_ms) <= wall_ms
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether nothing is left of the group (no members, no offsets).
    pub fn is_removable(&self) -> bool {
        self.state == State::Empty && self.offsets.is_empty() && self.pending.is_empty()
    }

    // ---- Describe -----------------------------------------------------------

    /// The group as DescribeGroups shows it.
    pub fn describe(&self) -> Description {
        let stable = self.state == State::Stable;
        let protocol = self.protocol.clone().unwrap_or_default();
        Description {
            state: self.state.name(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { protocol.clone() } else { String::new() },
            members: self
                .sorted_members()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable { m.metadata_for(&protocol) } else { Bytes::new() },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        }
    }

    // ---- Timers -------------------------------------------------------------

    /// The next time [`Self::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.join_reply.is_none() && m.sync_reply.is_none())
            .map(|m| m.session_deadline);
        sessions
            .chain(self.pending.values().copied())
            .chain(self.join_deadline)
            .chain(self.initial_delay_end)
            .chain(self.sync_deadline)
            .min()
    }

    /// Expires sessions and ends overdue rebalance phases.
    pub fn on_timer(&mut self, now: u64, wall_ms: i64) {
        self.pending.retain(|_, deadline| *deadline > now);
        if let Some(end) = self.initial_delay_end {
            if now >= end {
                self.initial_delay_end = None;
                self.try_complete_join(now, wall_ms);
            }
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_reply.is_none() && m.sync_reply.is_none() && m.session_deadline <= now)
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "session timed out: member removed");
            self.remove_member_and_rebalance(&id, now, wall_ms);
        }
        if self.state == State::PreparingRebalance {
            if self.join_deadline.is_some_and(|d| now >= d) {
                self.complete_join(now, wall_ms);
            } else {
                self.try_complete_join(now, wall_ms);
            }
        }
        if self.state == State::CompletingRebalance && self.sync_deadline.is_some_and(|d| now >= d) {
            // Kafka 3.2+: members that never synced are dropped and the rest rebalance.
            let late: Vec<String> = self.pending_sync.iter().cloned().collect();
            for id in &late {
                tracing::info!(group = %self.id, member = %id, "no SyncGroup within the rebalance timeout: member removed");
                self.drop_member(id);
            }
            self.prepare_rebalance(now, wall_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GroupConfig {
        GroupConfig { initial_rebalance_delay_ms: 0, ..GroupConfig::default() }
    }

    fn request(member_id: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            instance_id: instance.map(Into::into),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
            require_known_member_id: true,
            supports_skip_assignment: false,
        }
    }

    fn join(g: &mut Group, r: JoinRequest, now: u64) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        g.join(&config(), r, tx, now, 0);
        rx
    }

    /// A new member's full join: MEMBER_ID_REQUIRED, then the join proper.
    fn join_new(g: &mut Group, now: u64) -> (String, oneshot::Receiver<JoinOutcome>) {
        let mut first = join(g, request("", None), now);
        let required = first.try_recv().expect("answered at once");
        assert_eq!(required.error, errors::MEMBER_ID_REQUIRED);
        let id = required.member_id;
        let rx = join(g, request(&id, None), now);
        (id, rx)
    }

    fn sync(
        g: &mut Group,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> oneshot::Receiver<SyncOutcome> {
        let (tx, rx) = oneshot::channel();
        let r = SyncRequest { member_id: member.into(), generation, assignments, ..SyncRequest::default() };
        g.sync(r, tx, 0, 0);
        rx
    }

    #[test]
    fn two_members_join_sync_and_rebalance_when_one_leaves() {
        let mut g = Group::new("g".into(), 0, 0);
        let (a, mut a_join) = join_new(&mut g, 0);
        let joined = a_join.try_recv().expect("the only member completes the join at once");
        assert_eq!((joined.error, joined.generation, joined.leader.as_str()), (0, 1, a.as_str()));
        assert_eq!(joined.protocol.as_deref(), Some("range"));
        assert_eq!(joined.members.len(), 1, "the leader sees the members");
        let mut s = sync(&mut g, &a, 1, vec![(a.clone(), Bytes::from_static(b"all"))]);
        assert_eq!(s.try_recv().expect("synced").assignment, Bytes::from_static(b"all"));
        assert_eq!(g.state(), State::Stable);

        // A second member: the first learns of the rebalance by heartbeat and rejoins.
        let (b, mut b_join) = join_new(&mut g, 10);
        assert!(b_join.try_recv().is_err(), "waits for the others");
        assert_eq!(g.state(), State::PreparingRebalance);
        assert_eq!(g.heartbeat(&a, None, 1, 20), errors::REBALANCE_IN_PROGRESS);
        let mut a_join = join(&mut g, request(&a, None), 30);
        let (ja, jb) = (a_join.try_recv().expect("a"), b_join.try_recv().expect("b"));
        assert_eq!((ja.generation, jb.generation), (2, 2));
        assert_eq!(ja.leader, a, "the leader stays");
        assert_eq!((ja.members.len(), jb.members.len()), (2, 0));
        assert_eq!(g.state(), State::CompletingRebalance);
        // The follower syncs first and waits; the leader's sync answers both.
        let mut sb = sync(&mut g, &b, 2, vec![]);
        assert!(sb.try_recv().is_err());
        assert_eq!(g.check_commit(&a, None, 2, 35), errors::REBALANCE_IN_PROGRESS);
        let mut sa =
            sync(&mut g, &a, 2, vec![(a.clone(), Bytes::from_static(b"p0")), (b.clone(), Bytes::from_static(b"p1"))]);
        assert_eq!(sa.try_recv().expect("a").assignment, Bytes::from_static(b"p0"));
        assert_eq!(sb.try_recv().expect("b").assignment, Bytes::from_static(b"p1"));
        assert_eq!(g.check_commit(&a, None, 2, 40), errors::NONE);
        assert_eq!(g.check_commit(&a, None, 1, 40), errors::ILLEGAL_GENERATION);
        assert_eq!(g.check_commit("stranger", None, 2, 40), errors::UNKNOWN_MEMBER_ID);
        assert_eq!(
            g.check_commit("", None, -1, 40),
            errors::UNKNOWN_MEMBER_ID,
            "standalone commits need an empty group"
        );

        // b leaves: a rebalances alone; then a leaves and the group is empty.
        assert_eq!(g.leave(&b, None, 50, 0), errors::NONE);
        assert_eq!(g.heartbeat(&a, None, 2, 60), errors::REBALANCE_IN_PROGRESS);
        let mut a_join = join(&mut g, request(&a, None), 70);
        assert_eq!(a_join.try_recv().expect("alone").generation, 3);
        assert_eq!(g.leave(&a, None, 80, 0), errors::NONE);
        assert_eq!(g.state(), State::Empty);
        assert_eq!(g.generation(), 4);
        assert_eq!(g.check_commit("", None, -1, 90), errors::NONE);
        assert_eq!(g.leave(&a, None, 90, 0), errors::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn a_silent_member_expires_after_its_session_timeout() {
        let mut g = Group::new("g".into(), 0, 0);
        let (a, mut ja) = join_new(&mut g, 0);
        ja.try_recv().expect("joined");
        sync(&mut g, &a, 1, vec![]).try_recv().expect("synced");
        let (b, mut jb) = join_new(&mut g, 100);
        let _rejoin = join(&mut g, request(&a, None), 100);
        assert_eq!(jb.try_recv().expect("b").generation, 2);
        sync(&mut g, &a, 2, vec![]).try_recv().expect("the leader's sync completes the rebalance");
        assert_eq!(g.state(), State::Stable);
        // a heartbeats, b does not.
        for t in (1_000..12_000).step_by(1_000) {
            assert_eq!(g.heartbeat(&a, None, 2, t), errors::NONE);
            if g.next_deadline().is_some_and(|d| d <= t) {
                g.on_timer(t, 0);
            }
        }
        g.on_timer(12_000, 0);
        assert_eq!(g.heartbeat(&b, None, 2, 12_000), errors::UNKNOWN_MEMBER_ID, "b expired");
        assert_eq!(g.heartbeat(&a, None, 2, 12_000), errors::REBALANCE_IN_PROGRESS);
        let mut ja = join(&mut g, request(&a, None), 12_100);
        let outcome = ja.try_recv().expect("a alone");
        assert_eq!((outcome.generation, outcome.members.len()), (3, 1));
    }

    #[test]
    fn a_static_member_rejoins_without_a_rebalance_and_fences_its_old_id() {
        let mut g = Group::new("g".into(), 0, 0);
        let mut ja = join(&mut g, request("", Some("i-a")), 0);
        let a = ja.try_recv().expect("static members need no member id round trip");
        assert_eq!((a.error, a.generation), (0, 1));
        let mut jb = join(&mut g, request("", Some("i-b")), 0);
        assert!(jb.try_recv().is_err());
        let _rejoin = join(&mut g, request(&a.member_id, Some("i-a")), 0);
        let b = jb.try_recv().expect("b");
        sync(&mut g, &a.member_id, 2, vec![(b.member_id.clone(), Bytes::from_static(b"p1"))]);
        assert_eq!(g.state(), State::Stable);
        // b restarts: same instance id, empty member id, same subscription.
        let mut again = join(&mut g, request("", Some("i-b")), 10);
        let rejoined = again.try_recv().expect("answered at once");
        assert_eq!((rejoined.error, rejoined.generation), (0, 2), "no new generation");
        assert_ne!(rejoined.member_id, b.member_id);
        assert_eq!(g.state(), State::Stable);
        let mut s = sync(&mut g, &rejoined.member_id, 2, vec![]);
        assert_eq!(s.try_recv().expect("assignment kept").assignment, Bytes::from_static(b"p1"));
        assert_eq!(g.heartbeat(&b.member_id, Some("i-b"), 2, 20), errors::FENCED_INSTANCE_ID);
        assert_eq!(g.check_commit(&b.member_id, Some("i-b"), 2, 20), errors::FENCED_INSTANCE_ID);
        // The leader restarts too: still no rebalance; it gets the members.
        let mut leader = join(&mut g, request("", Some("i-a")), 30);
        let rejoined = leader.try_recv().expect("answered at once");
        assert_eq!((rejoined.generation, rejoined.members.len()), (2, 2));
        assert_eq!(rejoined.leader, rejoined.member_id);
        assert_eq!(g.state(), State::Stable);
    }

    #[test]
    fn a_static_member_that_misses_a_rebalance_keeps_its_place_until_its_session_ends() {
        let mut g = Group::new("g".into(), 0, 0);
        let mut ja = join(&mut g, request("", Some("i-a")), 0);
        let a = ja.try_recv().expect("a");
        // Static members run long sessions (here 60 s, the rebalance timeout 30 s).
        let mut long = request("", Some("i-b"));
        long.session_timeout_ms = 60_000;
        let mut jb = join(&mut g, long, 0);
        let _rejoin = join(&mut g, request(&a.member_id, Some("i-a")), 0);
        let b = jb.try_recv().expect("b");
        sync(&mut g, &a.member_id, 2, vec![]);
        // A dynamic member joins while b is restarting; b never rejoins in time.
        let (_c, mut jc) = join_new(&mut g, 100);
        let _a_again = join(&mut g, request(&a.member_id, Some("i-a")), 100);
        g.on_timer(30_100, 0); // the rebalance timeout
        let joined = jc.try_recv().expect("the join completes without b");
        assert_eq!(joined.generation, 3);
        assert_eq!(g.heartbeat(&b.member_id, Some("i-b"), 3, 30_200), errors::NONE, "b is still a member");
        g.on_timer(100_000, 0); // b's session ran out
        assert_eq!(g.heartbeat(&b.member_id, Some("i-b"), 3, 100_000), errors::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn the_initial_delay_gathers_members_into_one_generation() {
        let mut g = Group::new("g".into(), 1_000, 0);
        let (_a, mut ja) = join_new(&mut g, 0);
        let (_b, mut jb) = join_new(&mut g, 500);
        g.on_timer(1_000, 0);
        assert!(ja.try_recv().is_err(), "b restarted the delay");
        g.on_timer(1_500, 0);
        let (a, b) = (ja.try_recv().expect("a"), jb.try_recv().expect("b"));
        assert_eq!((a.generation, b.generation), (1, 1));
    }

    #[test]
    fn a_leader_that_never_syncs_is_removed_after_the_rebalance_timeout() {
        let mut g = Group::new("g".into(), 0, 0);
        let (a, mut ja) = join_new(&mut g, 0);
        ja.try_recv().expect("a");
        sync(&mut g, &a, 1, vec![]);
        let (b, mut jb) = join_new(&mut g, 0);
        let _rejoin = join(&mut g, request(&a, None), 0);
        jb.try_recv().expect("b joined");
        let mut sb = sync(&mut g, &b, 2, vec![]);
        g.on_timer(30_000, 0);
        assert_eq!(sb.try_recv().expect("told to rejoin").error, errors::REBALANCE_IN_PROGRESS);
        assert_eq!(g.heartbeat(&a, None, 2, 30_000), errors::UNKNOWN_MEMBER_ID);
        let mut jb = join(&mut g, request(&b, None), 30_001);
        assert_eq!(jb.try_recv().expect("b leads").leader, b);
    }

    #[test]
    fn bad_joins_get_their_error_codes() {
        let mut g = Group::new("g".into(), 0, 0);
        let mut short = request("", None);
        short.session_timeout_ms = 10;
        assert_eq!(join(&mut g, short, 0).try_recv().expect("e").error, errors::INVALID_SESSION_TIMEOUT);
        let mut none = request("", None);
        none.protocols.clear();
        assert_eq!(join(&mut g, none, 0).try_recv().expect("e").error, errors::INCONSISTENT_GROUP_PROTOCOL);
        assert_eq!(join(&mut g, request("ghost", None), 0).try_recv().expect("e").error, errors::UNKNOWN_MEMBER_ID);
        let (_a, _) = join_new(&mut g, 0);
        let mut other = request("", None);
        other.protocols = vec![("roundrobin".into(), Bytes::new())];
        assert_eq!(join(&mut g, other, 0).try_recv().expect("e").error, errors::INCONSISTENT_GROUP_PROTOCOL);
    }

    #[test]
    fn offsets_of_an_empty_group_expire_after_the_retention() {
        let mut g = Group::new("g".into(), 0, 1_000);
        let committed =
            |ms| Committed { offset: 1, leader_epoch: -1, metadata: String::new(), commit_ms: ms, ledger: "l".into() };
        g.offsets.insert(("t".into(), 0), committed(1_000));
        g.offsets.insert(("t".into(), 1), committed(5_000));
        assert!(g.expired_offsets(3_000, 10_000).is_empty());
        assert_eq!(g.expired_offsets(11_000, 10_000), vec![("t".to_string(), 0)]);
        assert!(g.expired_offsets(i64::MAX, -1).is_empty(), "-1 keeps them forever");
    }
}
