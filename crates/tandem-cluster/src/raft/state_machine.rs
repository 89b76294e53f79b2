//! The replicated [`ClusterState`] behind openraft's `RaftStateMachine`, with snapshots on
//! redb and a watch channel for the parts of the node that act on applied state.
//!
//! Persistence model: *persistent snapshot, in-memory state* (the second of the two models
//! openraft's `RaftStateMachine::apply` documents). `apply` changes only memory; what is
//! durable is the current snapshot (state bytes + last applied log id + membership, one
//! redb row, written with an fsync'ing commit before `build_snapshot`/`install_snapshot`
//! return) together with the log and the commit pointer kept by the log store. On open the
//! state is rebuilt from that snapshot, and openraft then re-applies the log from the
//! snapshot's last log id up to the persisted commit pointer before the node serves. The
//! replay is exact, not merely idempotent, because it starts from the snapshot's state rather
//! than the crash-time one and `ClusterState::apply` is deterministic (no clock, no
//! randomness). Nothing can be lost: openraft purges the log only up to the last *persisted*
//! snapshot. Why not persist the state on every apply instead: sticky tables make the state
//! the big part of the store, and rewriting it per batch would put its size behind every
//! commit's fsync; replaying at most a snapshot interval of entries at startup is cheaper.

use std::fmt::Debug;
use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::AnyError;
use openraft::ErrorSubject;
use openraft::ErrorVerb;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::StorageIOError;
use redb::Database;
use redb::ReadableDatabase;
use redb::ReadableTable;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::watch;

use super::db::begin_durable;
use super::db::blocking;
use super::db::decode;
use super::db::encode;
use super::db::OrStorage;
use super::db::KEY_CURRENT;
use super::db::SNAPSHOT;
use super::types::Entry;
use super::types::EntryPayload;
use super::types::LogId;
use super::types::Response;
use super::types::Snapshot;
use super::types::SnapshotMeta;
use super::types::StorageError;
use super::types::StoredMembership;
use super::types::TandemRaft;
use crate::state::ClusterState;

/// Bumped if [`SnapshotBody`] ever changes shape, so an old node refuses a snapshot it
/// would misread instead of installing garbage.
const SNAPSHOT_FORMAT: u32 = 1;

/// What the lease and config logic observe: the state after each applied batch of entries,
/// tagged with the last log id it includes (so a reader can tell a fresher state from a
/// replayed one). Subscribe with [`StateMachineStore::subscribe`] before handing the store to
/// openraft; the channel closes when the Raft node shuts down and drops the state machine.
#[derive(Clone, Debug, Default)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub state: Arc<ClusterState>,
}

/// The bytes of a snapshot as they travel to followers and sit in `raft_snapshot`: the
/// applied position and membership travel *inside* the data too (not only in openraft's
/// `SnapshotMeta`), so an installed snapshot can be checked against the meta it came with.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    format: u32,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// `ClusterState::to_snapshot()`: the state module owns its own encoding.
    state: Vec<u8>,
}

/// The `raft_snapshot` row: openraft's meta plus the snapshot bytes.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

fn snapshot_subject(meta: Option<&SnapshotMeta>) -> ErrorSubject<u64> {
    ErrorSubject::Snapshot(meta.map(|m| m.signature()))
}

/// Decode snapshot bytes into the state they carry.
fn decode_body(
    data: &[u8],
    meta: Option<&SnapshotMeta>,
) -> Result<(SnapshotBody, ClusterState), StorageError> {
    let subject = snapshot_subject(meta);
    let refuse = |msg: String| -> StorageError {
        StorageIOError::new(subject.clone(), ErrorVerb::Read, AnyError::error(msg)).into()
    };
    // `format` is the first field, so it decodes on its own even when the rest of the body
    // has a shape this build does not know: the error then says why, not just "bad bytes".
    let (format, _) = postcard::take_from_bytes::<u32>(data)
        .map_err(|e| refuse(format!("snapshot header: {e}")))?;
    if format != SNAPSHOT_FORMAT {
        return Err(refuse(format!(
            "snapshot format {format} (this build reads {SNAPSHOT_FORMAT})"
        )));
    }
    let body: SnapshotBody = decode(data, subject.clone())?;
    let state = ClusterState::from_snapshot(&body.state)
        .map_err(|e| refuse(format!("cluster state: {e}")))?;
    Ok((body, state))
}

fn read_current(db: &Database) -> Result<Option<StoredSnapshot>, StorageError> {
    let r = (snapshot_subject(None), ErrorVerb::Read);
    let txn = db.begin_read().or_storage(&r)?;
    let table = txn.open_table(SNAPSHOT).or_storage(&r)?;
    let row = table.get(KEY_CURRENT).or_storage(&r)?;
    row.map(|bytes| decode(bytes.value(), snapshot_subject(None)))
        .transpose()
}

/// Make `stored` the current snapshot unless a newer one is already there (a slow build can
/// finish after a newer snapshot was installed from the leader; it must not replace it).
fn write_current(db: &Database, stored: &StoredSnapshot) -> Result<(), StorageError> {
    let subject = snapshot_subject(Some(&stored.meta));
    let w = (subject.clone(), ErrorVerb::Write);
    let bytes = encode(stored, subject.clone())?;
    let txn = begin_durable(db, subject.clone())?;
    {
        let mut table = txn.open_table(SNAPSHOT).or_storage(&w)?;
        let newer_present = match table.get(KEY_CURRENT).or_storage(&w)? {
            Some(row) => {
                let current: StoredSnapshot = decode(row.value(), subject.clone())?;
                current.meta.last_log_id > stored.meta.last_log_id
            }
            None => false,
        };
        if !newer_present {
            table.insert(KEY_CURRENT, bytes.as_slice()).or_storage(&w)?;
        }
    }
    txn.commit().or_storage(&w)
}

/// The state machine of one node.
pub struct StateMachineStore {
    db: Arc<Database>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    state: Arc<ClusterState>,
    applied: watch::Sender<AppliedState>,
    /// Distinguishes snapshots built at the same log id in this process (openraft wants
    /// unique snapshot ids while streaming); same log id means same state, so a repeat after
    /// a restart is harmless.
    builds: u64,
}

impl Debug for StateMachineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachineStore")
            .field("last_applied", &self.last_applied)
            .finish_non_exhaustive()
    }
}

impl StateMachineStore {
    /// Load the state machine from the current snapshot in `db` (empty if there is none).
    /// Blocking: called from `open_store` at node start.
    pub(crate) fn open(db: Arc<Database>) -> Result<Self, StorageError> {
        let (last_applied, membership, state) = match read_current(&db)? {
            Some(stored) => {
                let (body, state) = decode_body(&stored.data, Some(&stored.meta))?;
                (body.last_applied, body.membership, state)
            }
            None => (None, StoredMembership::default(), ClusterState::default()),
        };
        let state = Arc::new(state);
        let (applied, _) = watch::channel(AppliedState {
            last_applied,
            state: Arc::clone(&state),
        });
        Ok(Self {
            db,
            last_applied,
            membership,
            state,
            applied,
            builds: 0,
        })
    }

    /// Follow the applied state. The receiver starts at the current state.
    pub fn subscribe(&self) -> watch::Receiver<AppliedState> {
        self.applied.subscribe()
    }

    /// The state as applied so far (cheap: shares the current state).
    pub fn applied(&self) -> AppliedState {
        self.applied.borrow().clone()
    }

    fn publish(&self) {
        self.applied.send_replace(AppliedState {
            last_applied: self.last_applied,
            state: Arc::clone(&self.state),
        });
    }
}

/// A point-in-time view of the state machine; building it does not block applying.
pub struct SnapshotBuilder {
    db: Arc<Database>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    state: Arc<ClusterState>,
    build: u64,
}

impl RaftSnapshotBuilder<TandemRaft> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let snapshot_id = match &self.last_applied {
            Some(id) => format!("{id}-{}", self.build),
            None => format!("empty-{}", self.build),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let last_applied = self.last_applied;
        let membership = self.membership.clone();
        let state = Arc::clone(&self.state);
        let stored = blocking(&self.db, move |db| {
            let body = SnapshotBody {
                format: SNAPSHOT_FORMAT,
                last_applied,
                membership,
                state: state.to_snapshot(),
            };
            let data = encode(&body, snapshot_subject(Some(&meta)))?;
            let stored = StoredSnapshot { meta, data };
            write_current(db, &stored)?;
            Ok(stored)
        })
        .await?;
        tracing::info!(snapshot = %stored.meta.snapshot_id, bytes = stored.data.len(), "raft snapshot built");
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TandemRaft> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                // Copy-on-write: the first command of a batch clones the state that
                // subscribers hold, the rest of the batch mutates that private copy.
                EntryPayload::Normal(command) => {
                    let members = self.membership.membership();
                    let is_member = |node| members.get_node(&node).is_some();
                    Response::Applied(
                        Arc::make_mut(&mut self.state).apply_as_members(&command, is_member),
                    )
                }
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    let members = self.membership.membership();
                    let is_member = |node| members.get_node(&node).is_some();
                    Arc::make_mut(&mut self.state).drop_pins_to_non_members(is_member);
                    Response::Internal
                }
                EntryPayload::Blank => Response::Internal,
            };
            responses.push(response);
        }
        if !responses.is_empty() {
            self.publish();
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.builds += 1;
        SnapshotBuilder {
            db: Arc::clone(&self.db),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            state: Arc::clone(&self.state),
            build: self.builds,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let (body, state) = decode_body(&data, Some(meta))?;
        if body.last_applied != meta.last_log_id || body.membership != meta.last_membership {
            let msg = format!(
                "snapshot data is at {:?}, its meta says {:?}",
                body.last_applied, meta.last_log_id
            );
            let subject = snapshot_subject(Some(meta));
            return Err(StorageIOError::new(subject, ErrorVerb::Read, AnyError::error(msg)).into());
        }
        // Durable first: if this fails the in-memory state is still the old, consistent one.
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        blocking(&self.db, move |db| write_current(db, &stored)).await?;
        self.last_applied = body.last_applied;
        self.membership = body.membership;
        self.state = Arc::new(state);
        self.publish();
        tracing::info!(snapshot = %meta.snapshot_id, "raft snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let stored = blocking(&self.db, read_current).await?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
