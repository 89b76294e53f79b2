//! The redb layout shared by the log store and the state machine, and the few helpers both
//! use: postcard encoding, durable write transactions and running redb off the async runtime.
//!
//! Layout (one redb file, `raft.redb`, in the node's data dir):
//!
//! | table           | key            | value (postcard)                                  |
//! |-----------------|----------------|---------------------------------------------------|
//! | `raft_log`      | `u64` index    | `Entry<TandemRaft>`                               |
//! | `raft_meta`     | `"vote"`       | `Vote<u64>`                                       |
//! |                 | `"committed"`  | `LogId<u64>` (absent = nothing known committed)   |
//! |                 | `"last_purged"`| `LogId<u64>` (absent = nothing purged yet)        |
//! | `raft_snapshot` | `"current"`    | `StoredSnapshot { meta, data }`                   |
//!
//! redb stores `u64` keys in native order, so a range scan of `raft_log` walks the log in
//! index order. Values are postcard (compact, serde, maintained), never bincode
//! (unmaintained, RUSTSEC-2025-0141).

use std::sync::Arc;

use openraft::AnyError;
use openraft::ErrorSubject;
use openraft::ErrorVerb;
use openraft::StorageIOError;
use redb::Database;
use redb::Durability;
use redb::TableDefinition;
use redb::WriteTransaction;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::NodeId;
use super::types::StorageError;

/// Log entries by index.
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Vote, committed and last purged log id, each under a fixed key.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
/// The one current snapshot.
pub(crate) const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_snapshot");

pub(crate) const KEY_VOTE: &str = "vote";
pub(crate) const KEY_COMMITTED: &str = "committed";
pub(crate) const KEY_LAST_PURGED: &str = "last_purged";
pub(crate) const KEY_CURRENT: &str = "current";

/// Build a storage error that says what was being done to which part of the store.
pub(crate) fn io_err(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    err: impl std::error::Error + 'static,
) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::new(&err)).into()
}

pub(crate) fn encode<T: Serialize>(
    value: &T,
    subject: ErrorSubject<NodeId>,
) -> Result<Vec<u8>, StorageError> {
    postcard::to_stdvec(value).map_err(|e| io_err(subject, ErrorVerb::Write, e))
}

pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    subject: ErrorSubject<NodeId>,
) -> Result<T, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| io_err(subject, ErrorVerb::Read, e))
}

/// Start a write transaction whose `commit()` returns only once the data is on disk.
///
/// `Durability::Immediate` is redb's default (its 1-phase commit writes the new commit slot,
/// flips the god byte, then fsyncs; recovery picks the newest slot whose checksum verifies),
/// so this is a restatement rather than a change. It is set explicitly because every
/// acknowledgement Raft relies on (appended entries, votes, snapshots) is given after such a
/// commit, and that must not silently depend on a library default.
pub(crate) fn begin_durable(
    db: &Database,
    subject: ErrorSubject<NodeId>,
) -> Result<WriteTransaction, StorageError> {
    let mut txn = db
        .begin_write()
        .map_err(|e| io_err(subject.clone(), ErrorVerb::Write, e))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| io_err(subject, ErrorVerb::Write, e))?;
    Ok(txn)
}

/// Run blocking redb work on tokio's blocking pool.
///
/// A redb commit fsyncs, which can take milliseconds to much longer on a busy disk; doing
/// that on a runtime worker would stall the Raft core, heartbeats and the proxy tasks sharing
/// the runtime. `spawn_blocking` rather than `block_in_place`: it works on any runtime flavour
/// (`#[tokio::test]` and embedders may use a current-thread runtime, where `block_in_place`
/// panics), and the closure owns an `Arc<Database>` so no borrow crosses the thread boundary.
pub(crate) async fn blocking<T, F>(db: &Arc<Database>, work: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce(&Database) -> Result<T, StorageError> + Send + 'static,
{
    let db = Arc::clone(db);
    tokio::task::spawn_blocking(move || work(&db))
        .await
        .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?
}

/// Turn any redb error into openraft's storage error for `subject` and `verb`.
///
/// redb has one error type per operation (transaction, table, storage, commit); this lets one
/// `(subject, verb)` pair, set up once per operation, serve them all.
pub(crate) trait OrStorage<T> {
    fn or_storage(self, at: &(ErrorSubject<NodeId>, ErrorVerb)) -> Result<T, StorageError>;
}

impl<T, E: Into<redb::Error>> OrStorage<T> for Result<T, E> {
    fn or_storage(self, at: &(ErrorSubject<NodeId>, ErrorVerb)) -> Result<T, StorageError> {
        self.map_err(|e| io_err(at.0.clone(), at.1, e.into()))
    }
}
