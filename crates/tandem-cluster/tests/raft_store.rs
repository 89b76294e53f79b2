//! The redb store across restarts, and the state machine's contract with its subscribers.

#[path = "raft_support/fixtures.rs"]
mod fixtures;
#[path = "raft_support/temp.rs"]
mod temp;

use std::collections::BTreeSet;

use fixtures::CONFIG_V2;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftLogStorageExt;
use openraft::storage::RaftStateMachine;
use openraft::CommittedLeaderId;
use openraft::RaftLogReader;
use openraft::RaftSnapshotBuilder;
use openraft::StorageHelper;
use tandem_cluster::raft::open_store;
use tandem_cluster::raft::types::Entry;
use tandem_cluster::raft::types::EntryPayload;
use tandem_cluster::raft::types::LogId;
use tandem_cluster::raft::types::Membership;
use tandem_cluster::raft::types::Vote;
use tandem_cluster::raft::Response;
use tandem_cluster::raft::StoreError;
use tandem_cluster::state::ClusterState;
use tandem_cluster::state::Command;
use tandem_cluster::state::LeaseCommand;
use temp::TempDir;

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, payload: EntryPayload) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload,
    }
}

fn command(term: u64, index: u64, command: Command) -> Entry {
    entry(term, index, EntryPayload::Normal(command))
}

fn three_voters() -> Membership {
    Membership::new(vec![BTreeSet::from([1, 2, 3])], ())
}

/// 1: membership, 2: blank, 3..=6: commands.
fn sample_log() -> Vec<Entry> {
    let acquire = |node| {
        Command::Lease(LeaseCommand::Acquire {
            group: "vip-a".into(),
            node,
            seen: (0, 0),
        })
    };
    vec![
        entry(1, 1, EntryPayload::Membership(three_voters())),
        entry(1, 2, EntryPayload::Blank),
        command(
            1,
            3,
            Command::ApplyConfig {
                version: 2,
                toml: CONFIG_V2.into(),
            },
        ),
        command(1, 4, acquire(1)),
        command(2, 5, acquire(2)),
        command(2, 6, Command::PurgeSticky { now_ms: 1_000 }),
    ]
}

/// The state a sequence of entries produces, computed without the store.
fn expected_state(entries: &[Entry]) -> ClusterState {
    let mut state = ClusterState::default();
    for e in entries {
        if let EntryPayload::Normal(c) = &e.payload {
            state.apply(c);
        }
    }
    state
}

#[tokio::test]
async fn raft_everything_written_comes_back_after_reopen() {
    let dir = TempDir::new("raft-reopen");
    let log_entries = sample_log();
    let vote = Vote::new_committed(2, 2);
    let (snapshot_meta, snapshot_bytes) = {
        let (mut log, mut sm) = open_store(dir.path()).unwrap();
        log.blocking_append(log_entries.clone()).await.unwrap();
        log.save_vote(&vote).await.unwrap();
        log.save_committed(Some(log_id(2, 5))).await.unwrap();

        sm.apply(log_entries[..4].to_vec()).await.unwrap();
        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 4)));
        // Applied past the snapshot, then crash: entry 5 lives only in the log.
        sm.apply(log_entries[4..5].to_vec()).await.unwrap();
        log.purge(log_id(1, 2)).await.unwrap();
        (snapshot.meta, snapshot.snapshot.into_inner())
    };

    let (mut log, mut sm) = open_store(dir.path()).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(2, 6)));
    assert_eq!(
        log.try_get_log_entries(0..100).await.unwrap(),
        log_entries[2..]
    );
    assert_eq!(
        log.try_get_log_entries(4..=5).await.unwrap(),
        log_entries[3..5]
    );
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 5)));

    // The state machine restarts from its persisted snapshot...
    let (applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 4)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 1)));
    assert_eq!(membership.membership(), &three_voters());
    assert_eq!(*sm.applied().state, expected_state(&log_entries[..4]));
    let current = sm
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("snapshot kept");
    assert_eq!(current.meta, snapshot_meta);
    assert_eq!(current.snapshot.into_inner(), snapshot_bytes);

    // ...and openraft's startup (what `Raft::new` runs) replays the log up to the persisted
    // commit pointer, landing exactly on the state it had before the restart.
    let initial = StorageHelper::new(&mut log, &mut sm)
        .get_initial_state()
        .await
        .unwrap();
    assert_eq!(initial.committed, Some(log_id(2, 5)));
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(2, 5)));
    assert_eq!(*sm.applied().state, expected_state(&log_entries[..5]));
}

#[tokio::test]
async fn raft_truncate_and_cleared_commit_pointer_survive_reopen() {
    let dir = TempDir::new("raft-truncate");
    {
        let (mut log, _sm) = open_store(dir.path()).unwrap();
        log.blocking_append(sample_log()).await.unwrap();
        log.save_committed(Some(log_id(1, 2))).await.unwrap();
        log.save_committed(None).await.unwrap();
        log.truncate(log_id(2, 5)).await.unwrap();
    }
    let (mut log, _sm) = open_store(dir.path()).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, None);
    assert_eq!(state.last_log_id, Some(log_id(1, 4)));
    assert_eq!(log.read_committed().await.unwrap(), None);
    assert_eq!(log.read_vote().await.unwrap(), None);
}

#[tokio::test]
async fn raft_subscribers_see_each_applied_batch_and_internal_entries_answer_internal() {
    let dir = TempDir::new("raft-watch");
    let (_log, mut sm) = open_store(dir.path()).unwrap();
    let mut applied = sm.subscribe();
    assert_eq!(applied.borrow().last_applied, None);

    let entries = sample_log();
    let responses = sm.apply(entries[..3].to_vec()).await.unwrap();
    assert_eq!(responses[0], Response::Internal, "membership entry");
    assert_eq!(responses[1], Response::Internal, "blank entry");
    let mut replay = ClusterState::default();
    let EntryPayload::Normal(third) = &entries[2].payload else {
        panic!("entry 3 is a command");
    };
    let outcome = replay.apply(third);
    assert_eq!(responses[2], Response::Applied(outcome));

    applied.changed().await.unwrap();
    let seen = applied.borrow_and_update().clone();
    assert_eq!(seen.last_applied, Some(log_id(1, 3)));
    assert_eq!(*seen.state, expected_state(&entries[..3]));

    sm.apply(entries[3..].to_vec()).await.unwrap();
    applied.changed().await.unwrap();
    assert_eq!(*applied.borrow().state, expected_state(&entries));
    // The earlier view is a snapshot in time: later batches do not change it.
    assert_eq!(*seen.state, expected_state(&entries[..3]));

    drop(sm);
    assert!(
        applied.changed().await.is_err(),
        "channel closes with the state machine"
    );
}

#[tokio::test]
async fn raft_an_installed_snapshot_replaces_the_state_and_persists() {
    let leader_dir = TempDir::new("raft-snap-leader");
    let follower_dir = TempDir::new("raft-snap-follower");
    let entries = sample_log();
    let (_l, mut leader) = open_store(leader_dir.path()).unwrap();
    leader.apply(entries.clone()).await.unwrap();
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let bytes = snapshot.snapshot.into_inner();

    {
        let (_f, mut follower) = open_store(follower_dir.path()).unwrap();
        follower.apply(entries[..3].to_vec()).await.unwrap();
        // Data that does not match its meta is refused, and the state is left alone.
        let mut wrong_meta = snapshot.meta.clone();
        wrong_meta.last_log_id = Some(log_id(9, 99));
        let refused = follower
            .install_snapshot(&wrong_meta, Box::new(std::io::Cursor::new(bytes.clone())))
            .await;
        assert!(refused.is_err());
        let garbage = Box::new(std::io::Cursor::new(vec![0xff; 7]));
        assert!(follower
            .install_snapshot(&snapshot.meta, garbage)
            .await
            .is_err());
        // A snapshot from a build with another body format is refused by name.
        let mut future = bytes.clone();
        assert_eq!(future[0], 1, "format 1 is the leading varint byte");
        future[0] = 2;
        let err = follower
            .install_snapshot(&snapshot.meta, Box::new(std::io::Cursor::new(future)))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("snapshot format 2"), "{err}");
        assert_eq!(*follower.applied().state, expected_state(&entries[..3]));

        let mut receiving = follower.begin_receiving_snapshot().await.unwrap();
        receiving.get_mut().extend_from_slice(&bytes);
        follower
            .install_snapshot(&snapshot.meta, receiving)
            .await
            .unwrap();
        assert_eq!(*follower.applied().state, expected_state(&entries));
    }

    let (_f, mut follower) = open_store(follower_dir.path()).unwrap();
    let (applied, membership) = follower.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(2, 6)));
    assert_eq!(membership.membership(), &three_voters());
    assert_eq!(*follower.applied().state, expected_state(&entries));
    let current = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);
}

#[test]
fn raft_a_store_already_open_is_refused_with_its_path() {
    let dir = TempDir::new("raft-locked");
    let _open = open_store(dir.path()).unwrap();
    let err = open_store(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.path().join("raft.redb").display().to_string()),
        "{msg}"
    );
}

#[test]
fn raft_a_data_dir_that_cannot_be_created_is_named() {
    let dir = TempDir::new("raft-notdir");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = open_store(&file.join("data")).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("plain-file"), "{err}");
}

/// The store holds replicated ACME private keys: readable by its owner only.
#[test]
fn raft_store_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("raft-private");
    drop(open_store(dir.path()).unwrap());
    let file = dir.path().join(tandem_cluster::raft::STORE_FILE);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
}
