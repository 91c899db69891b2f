//! The open database, shared by the store and its indexer thread: reads in transactions that
//! are rolled back, writes that reopen the database after a full disk, and the lock that
//! makes a dump one point in time.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockWriteGuard};

use polodb_core::{Database, Transaction};

use super::{StoreError, StoreResult};

/// Free space, beyond the write-ahead logs to replay, that reopening after a full disk needs.
const ROOM_TO_REOPEN: u64 = 8 * 1024 * 1024;

/// Opens the database at a path, with whatever indexes the store keeps on it.
pub(super) type Opener = fn(&Path) -> StoreResult<Database>;

/// The open database, shared by the store and its indexer thread.
pub(super) struct DatabaseHandle {
    path: PathBuf,
    /// How the database was opened, to open it the same way again.
    open: Opener,
    /// Operations hold the read lock; reopening holds the write lock, so the old handle is
    /// closed before the new one opens (RocksDB allows one per directory). `None` only after
    /// a reopen failed: the next write tries again.
    db: RwLock<Option<Database>>,
    /// Counts reopens, so writers that failed together reopen once.
    reopens: AtomicU64,
    /// Every write holds it shared; a dump holds it alone. PoloDB's transactions read the
    /// newest committed data, not a snapshot, so this is what makes a dump one point in time
    /// while reads go on.
    writes: RwLock<()>,
}

impl DatabaseHandle {
    pub(super) fn open(path: PathBuf, open: Opener) -> StoreResult<DatabaseHandle> {
        let db = open(&path)?;
        Ok(DatabaseHandle {
            path,
            open,
            db: RwLock::new(Some(db)),
            reopens: AtomicU64::new(0),
            writes: RwLock::new(()),
        })
    }

    /// Holds every write off until the guard is dropped; reads go on.
    pub(super) fn hold_writes(&self) -> RwLockWriteGuard<'_, ()> {
        self.writes.write().expect("writes lock")
    }

    /// Runs `work` on the open database.
    pub(super) fn with_db<T>(
        &self,
        work: impl FnOnce(&Database) -> polodb_core::Result<T>,
    ) -> StoreResult<T> {
        let db = self.db.read().expect("database lock");
        let db = db
            .as_ref()
            .ok_or_else(|| StoreError::Database("the database could not be reopened".into()))?;
        Ok(work(db)?)
    }

    /// Runs reads in a transaction that is rolled back. A read outside one auto-commits a
    /// synced transaction: an fdatasync per lookup.
    pub(super) fn read<T>(
        &self,
        reads: impl FnOnce(&Transaction) -> polodb_core::Result<T>,
    ) -> StoreResult<T> {
        self.with_db(|db| {
            let txn = db.start_transaction()?;
            let result = reads(&txn);
            txn.rollback()?;
            result
        })
    }

    /// Runs a write. Once a write has failed for lack of space, RocksDB refuses every write
    /// until 64 MiB (its write buffer) are free, which on a small disk is never; reopening
    /// the database clears that, as a restart does. So a write that fails that way while
    /// there is room again reopens the database and is tried once more.
    pub(super) fn write<T>(
        &self,
        work: impl Fn(&Database) -> polodb_core::Result<T>,
    ) -> StoreResult<T> {
        let _not_dumping = self.writes.read().expect("writes lock");
        let reopens = self.reopens.load(Ordering::Acquire);
        let failed = match self.with_db(&work) {
            Err(e)
                if (matches!(e, StoreError::OutOfSpace(_)) || self.is_closed())
                    && self.has_room_to_reopen() =>
            {
                e
            }
            done => return done,
        };
        tracing::warn!(error = %failed, "a write failed for lack of space; reopening the database");
        self.reopen(reopens)?;
        self.with_db(&work)
    }

    fn is_closed(&self) -> bool {
        self.db.read().expect("database lock").is_none()
    }

    /// Whether the disk has room to replay the write-ahead logs and go on.
    fn has_room_to_reopen(&self) -> bool {
        let logs: u64 = std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "log"))
            .filter_map(|entry| entry.metadata().ok())
            .map(|meta| meta.len())
            .sum();
        rustix::fs::statvfs(&self.path)
            .is_ok_and(|fs| fs.f_bavail.saturating_mul(fs.f_frsize) >= logs + ROOM_TO_REOPEN)
    }

    /// Closes and reopens the database, unless another writer did since `seen` reopens.
    fn reopen(&self, seen: u64) -> StoreResult<()> {
        let mut db = self.db.write().expect("database lock");
        if self.reopens.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        self.reopens.fetch_add(1, Ordering::AcqRel);
        // Closed first: RocksDB allows one handle per directory.
        drop(db.take());
        *db = Some((self.open)(&self.path)?);
        tracing::info!("database reopened");
        Ok(())
    }
}
