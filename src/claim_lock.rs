//! One decision about nickname claims at a time. A claim is check-then-write, and it counts
//! only once its login's session is stored too, so the whole of a login (or a bot's
//! creation, or an admin's removal) holds this lock: two people never both win one name.
//! Servers sharing a database also take the store's lock, so this holds across them.

use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard};

use crate::store::{self, Storage, StoreResult};

pub struct ClaimLock {
    /// Taken first, so that only one task per process waits on (and holds a connection
    /// for) the store's lock.
    local: Mutex<()>,
    storage: Arc<dyn Storage>,
}

/// Holds the lock until dropped.
pub struct ClaimGuard<'a> {
    _local: MutexGuard<'a, ()>,
    shared: Option<Box<dyn Send>>,
}

impl ClaimLock {
    pub fn new(storage: Arc<dyn Storage>) -> ClaimLock {
        ClaimLock {
            local: Mutex::new(()),
            storage,
        }
    }

    pub async fn lock(&self) -> StoreResult<ClaimGuard<'_>> {
        let local = self.local.lock().await;
        let shared = store::blocking(&self.storage, |storage| storage.lock_claims()).await?;
        Ok(ClaimGuard {
            _local: local,
            shared,
        })
    }
}

impl Drop for ClaimGuard<'_> {
    /// The store's lock is released by a database call, which must not run on an async
    /// worker.
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || drop(shared))),
                Err(_) => drop(shared),
            }
        }
    }
}
