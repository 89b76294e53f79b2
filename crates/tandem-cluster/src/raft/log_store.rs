//! The Raft log, vote and commit pointer on redb (openraft `storage-v2` `RaftLogStorage`).
//!
//! Every mutating call runs one redb write transaction with immediate durability and returns
//! (or, for `append`, fires openraft's `LogFlushed` callback) only after `commit()` returned,
//! i.e. after redb's fsync. That is the whole durability argument: Raft counts this node
//! towards a quorum for an entry or a vote as soon as we acknowledge it, so an acknowledged
//! write that a power cut could undo would let two leaders win the same term or a committed
//! entry vanish. Each call is also one transaction, so a crash leaves either all or none of
//! it: `purge` moves `last_purged` and deletes the purged entries atomically, and the log
//! never has a hole.

use std::fmt::Debug;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::LogFlushed;
use openraft::storage::RaftLogStorage;
use openraft::ErrorSubject;
use openraft::ErrorVerb;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use redb::Database;
use redb::ReadableDatabase;
use redb::ReadableTable;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::db::begin_durable;
use super::db::blocking;
use super::db::decode;
use super::db::encode;
use super::db::OrStorage;
use super::db::KEY_COMMITTED;
use super::db::KEY_LAST_PURGED;
use super::db::KEY_VOTE;
use super::db::LOG;
use super::db::META;
use super::types::Entry;
use super::types::LogId;
use super::types::LogState;
use super::types::StorageError;
use super::types::TandemRaft;
use super::types::Vote;

/// The durable Raft log of one node. Cheap to clone (it is a handle on the shared redb
/// database), which is how openraft gets independent log readers for its replication tasks.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    pub(crate) fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    async fn read_meta<T>(
        &self,
        key: &'static str,
        subject: ErrorSubject<u64>,
    ) -> Result<Option<T>, StorageError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        blocking(&self.db, move |db| read_meta(db, key, subject)).await
    }

    /// Durably set (`Some`) or clear (`None`) one `raft_meta` key.
    async fn write_meta<T: Serialize>(
        &self,
        key: &'static str,
        value: Option<&T>,
        subject: ErrorSubject<u64>,
    ) -> Result<(), StorageError> {
        let bytes = value.map(|v| encode(v, subject.clone())).transpose()?;
        blocking(&self.db, move |db| {
            let w = (subject.clone(), ErrorVerb::Write);
            let txn = begin_durable(db, subject.clone())?;
            {
                let mut meta = txn.open_table(META).or_storage(&w)?;
                match &bytes {
                    Some(bytes) => meta.insert(key, bytes.as_slice()).or_storage(&w)?,
                    None => meta.remove(key).or_storage(&w)?,
                };
            }
            txn.commit().or_storage(&w)
        })
        .await
    }
}

fn read_meta<T: DeserializeOwned>(
    db: &Database,
    key: &str,
    subject: ErrorSubject<u64>,
) -> Result<Option<T>, StorageError> {
    let r = (subject.clone(), ErrorVerb::Read);
    let txn = db.begin_read().or_storage(&r)?;
    let meta = txn.open_table(META).or_storage(&r)?;
    let bytes = meta.get(key).or_storage(&r)?;
    bytes
        .map(|b| decode(b.value(), subject.clone()))
        .transpose()
}

/// The inclusive index range `range` covers, or `None` when it is empty, so the redb range
/// scan is never handed a reversed or overflowing range.
fn inclusive(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => e.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (start <= end).then_some((start, end))
}

impl RaftLogReader<TandemRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let Some((start, end)) = inclusive(&range) else {
            return Ok(Vec::new());
        };
        blocking(&self.db, move |db| {
            let r = (ErrorSubject::Logs, ErrorVerb::Read);
            let txn = db.begin_read().or_storage(&r)?;
            let log = txn.open_table(LOG).or_storage(&r)?;
            let mut entries = Vec::new();
            for item in log.range(start..=end).or_storage(&r)? {
                let (_index, bytes) = item.or_storage(&r)?;
                entries.push(decode::<Entry>(bytes.value(), ErrorSubject::Logs)?);
            }
            Ok(entries)
        })
        .await
    }
}

impl RaftLogStorage<TandemRaft> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState, StorageError> {
        blocking(&self.db, |db| {
            let r = (ErrorSubject::Logs, ErrorVerb::Read);
            let last_purged_log_id: Option<LogId> =
                read_meta(db, KEY_LAST_PURGED, ErrorSubject::Logs)?;
            let txn = db.begin_read().or_storage(&r)?;
            let log = txn.open_table(LOG).or_storage(&r)?;
            let last = log.last().or_storage(&r)?;
            let last_log_id = match last {
                Some((_index, bytes)) => {
                    Some(decode::<Entry>(bytes.value(), ErrorSubject::Logs)?.log_id)
                }
                // Everything up to the purge point is gone: the purged id is still the last
                // log id, which is what keeps the log contiguous across a full purge.
                None => last_purged_log_id,
            };
            Ok(LogState {
                last_purged_log_id,
                last_log_id,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_meta(KEY_VOTE, Some(vote), ErrorSubject::Vote)
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(KEY_VOTE, ErrorSubject::Vote).await
    }

    /// Persisting the commit pointer lets a restarted node re-apply everything it knew was
    /// committed before it hears from a leader, which is what makes the snapshot-plus-replay
    /// state machine (see `state_machine.rs`) come back to where it was.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write_meta(KEY_COMMITTED, committed.as_ref(), ErrorSubject::Store)
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.read_meta(KEY_COMMITTED, ErrorSubject::Store).await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TandemRaft>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Encode on the caller's task: the iterator need not be 'static, the bytes are.
        let mut rows = Vec::new();
        for entry in entries {
            let subject = ErrorSubject::Log(entry.log_id);
            rows.push((entry.log_id.index, encode(&entry, subject)?));
        }
        blocking(&self.db, move |db| {
            let w = (ErrorSubject::Logs, ErrorVerb::Write);
            let txn = begin_durable(db, ErrorSubject::Logs)?;
            {
                let mut log = txn.open_table(LOG).or_storage(&w)?;
                for (index, bytes) in &rows {
                    log.insert(index, bytes.as_slice()).or_storage(&w)?;
                }
            }
            txn.commit().or_storage(&w)
        })
        .await?;
        // Only now, after the fsync'ing commit, may openraft count these entries as stored.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "raft log: truncating from here on");
        blocking(&self.db, move |db| {
            let w = (ErrorSubject::Logs, ErrorVerb::Delete);
            let txn = begin_durable(db, ErrorSubject::Logs)?;
            {
                let mut log = txn.open_table(LOG).or_storage(&w)?;
                log.retain_in(log_id.index.., |_, _| false).or_storage(&w)?;
            }
            txn.commit().or_storage(&w)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "raft log: purging up to here");
        let purged = encode(&log_id, ErrorSubject::Logs)?;
        blocking(&self.db, move |db| {
            let w = (ErrorSubject::Logs, ErrorVerb::Delete);
            let txn = begin_durable(db, ErrorSubject::Logs)?;
            {
                let mut meta = txn.open_table(META).or_storage(&w)?;
                meta.insert(KEY_LAST_PURGED, purged.as_slice())
                    .or_storage(&w)?;
                let mut log = txn.open_table(LOG).or_storage(&w)?;
                log.retain_in(..=log_id.index, |_, _| false)
                    .or_storage(&w)?;
            }
            txn.commit().or_storage(&w)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;

    use super::inclusive;

    #[test]
    fn inclusive_bounds_never_reverse_or_overflow() {
        assert_eq!(inclusive(&(3..7)), Some((3, 6)));
        assert_eq!(inclusive(&(3..=7)), Some((3, 7)));
        assert_eq!(inclusive(&(..)), Some((0, u64::MAX)));
        assert_eq!(inclusive(&(5..5)), None);
        assert_eq!(inclusive(&(..0)), None);
        let reversed = (Bound::Included(7), Bound::Excluded(3));
        assert_eq!(inclusive(&reversed), None);
        let past_the_end = (Bound::Excluded(u64::MAX), Bound::Unbounded);
        assert_eq!(inclusive(&past_the_end), None);
    }
}
