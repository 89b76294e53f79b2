//! openraft's own storage conformance suite against the redb store: every test gets a fresh
//! store in its own temp dir, removed when the test ends.

#[path = "raft_support/temp.rs"]
mod temp;

use std::path::PathBuf;

use openraft::testing::StoreBuilder;
use openraft::testing::Suite;
use tandem_cluster::raft::open_store;
use tandem_cluster::raft::types::StorageError;
use tandem_cluster::raft::LogStore;
use tandem_cluster::raft::StateMachineStore;
use tandem_cluster::raft::TandemRaft;
use temp::TempDir;

/// Builds each store under `root`, so the test can check afterwards that none was left.
struct RedbBuilder {
    root: PathBuf,
}

impl StoreBuilder<TandemRaft, LogStore, StateMachineStore, TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = TempDir::under(&self.root, "suite");
        let (log, sm) = open_store(dir.path()).expect("open a fresh raft store");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    let root = TempDir::new("raft-suite");
    Suite::test_all(RedbBuilder {
        root: root.path().to_path_buf(),
    })
    .expect("openraft storage suite");
    let left: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
    assert!(left.is_empty(), "every per-test store is removed: {left:?}");
}
