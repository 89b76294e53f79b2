//! openraft glue: the type configuration ([`TandemRaft`]) and durable storage of a node's
//! Raft log, vote, commit pointer and state-machine snapshots in one redb file.
//!
//! Everything openraft-specific stays in this module so that an openraft upgrade (pinned at
//! `=0.9.25`: the 0.10 alphas change API every release) touches nothing else.
//!
//! * [`open_store`] opens (or creates) `<data dir>/raft.redb` and returns the two halves
//!   openraft's `storage-v2` API wants: a [`LogStore`] and a [`StateMachineStore`].
//! * Durability: every write openraft acknowledges is behind an fsync'ing redb commit; see
//!   `log_store.rs`. The state machine keeps the state in memory and persists snapshots; a
//!   restart rebuilds it from the snapshot and replays the committed log; see
//!   `state_machine.rs`.
//! * Observing applied state: [`StateMachineStore::subscribe`] hands out a watch receiver of
//!   [`AppliedState`], which the lease and config logic follow.
//!
//! The network (`RaftNetworkFactory` over mTLS) is `crate::transport`. Not here yet: the node
//! wiring (config, `Raft::new`, initialisation, snapshot policy), which builds on these types.

// openraft's `StorageError` (224 bytes) is the error type its storage traits require; boxing
// it in our helpers would only mean unboxing it again at every trait method, and it is
// returned on fatal paths only (openraft stops the node on a storage error).
#![allow(clippy::result_large_err)]

mod db;
mod log_store;
mod state_machine;
pub mod types;

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

pub use log_store::LogStore;
pub use state_machine::AppliedState;
pub use state_machine::SnapshotBuilder;
pub use state_machine::StateMachineStore;
pub use types::NodeId;
pub use types::Raft;
pub use types::Response;
pub use types::TandemRaft;

/// The store's file name inside the node's data dir.
pub const STORE_FILE: &str = "raft.redb";

/// Why the Raft store could not be opened. Every variant names the file (or dir) involved,
/// because the usual causes (permissions, a full disk, a second daemon holding the file, a
/// file from an incompatible build) are fixed by looking at that path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the raft data dir {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the raft store {} private to its owner (mode 0600): {source}", path.display())]
    Private {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the raft store {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("cannot prepare the tables of the raft store {}: {source}", path.display())]
    Tables { path: PathBuf, source: redb::Error },
    #[error("cannot load the raft snapshot from {}: {source}", path.display())]
    Snapshot {
        path: PathBuf,
        source: types::StorageError,
    },
}

/// Open (creating if needed) the Raft store of the node whose data dir is `data_dir`.
///
/// Blocking (file I/O and, for a store with a snapshot, decoding it): call it at node start,
/// or from `spawn_blocking`. redb locks the file, so a second open of the same store, by
/// this process or another daemon, fails with [`StoreError::Open`] instead of corrupting it.
pub fn open_store(data_dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let path = data_dir.join(STORE_FILE);
    let db = redb::Database::create(&path).map_err(|source| StoreError::Open {
        path: path.clone(),
        source,
    })?;
    // The store holds ACME private keys (replicated certificates): only the daemon's user
    // may read it, whatever the data dir's mode (systemd's StateDirectory is 0755).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| StoreError::Private {
                path: path.clone(),
                source,
            },
        )?;
    }
    create_tables(&db).map_err(|source| StoreError::Tables {
        path: path.clone(),
        source,
    })?;
    let db = Arc::new(db);
    let state_machine = StateMachineStore::open(Arc::clone(&db))
        .map_err(|source| StoreError::Snapshot { path, source })?;
    Ok((LogStore::new(db), state_machine))
}

/// Create the tables up front so every later read transaction can open them: redb refuses to
/// open a table in a read transaction before some write transaction created it.
fn create_tables(db: &redb::Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(db::LOG)?;
    txn.open_table(db::META)?;
    txn.open_table(db::SNAPSHOT)?;
    txn.commit()?;
    Ok(())
}
