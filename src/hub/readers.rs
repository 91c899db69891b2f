//! What each login has read and muted, cached in memory in front of the store.

use std::sync::Arc;

use super::Hub;
use crate::domain::Slug;
use crate::store::{self, ReaderRecord, StoreResult};

/// Reader records kept in memory at most; past it the cache starts over (they're on disk).
const READER_CACHE: usize = 10_000;

impl Hub {
    /// What a login has read and muted. Served from memory after the first read, since every
    /// page needs it.
    pub async fn reader(&self, login_id: &str) -> StoreResult<Arc<ReaderRecord>> {
        if let Some(cached) = self.readers.lock().expect("readers lock").get(login_id) {
            return Ok(cached.clone());
        }
        let login = login_id.to_owned();
        let found = Arc::new(
            store::blocking(&self.storage, move |s| s.reader(&login))
                .await?
                .unwrap_or_else(|| ReaderRecord {
                    login_id: login_id.to_owned(),
                    ..ReaderRecord::default()
                }),
        );
        self.remember_reader(found.clone());
        Ok(found)
    }

    fn remember_reader(&self, reader: Arc<ReaderRecord>) {
        let mut readers = self.readers.lock().expect("readers lock");
        if readers.len() >= READER_CACHE {
            readers.clear();
        }
        readers.insert(reader.login_id.clone(), reader);
    }

    /// Read-modify-write of a login's reader record, one at a time; written only if `change`
    /// changed it, so reloading a page costs no disk write.
    async fn update_reader(
        &self,
        login_id: &str,
        change: impl FnOnce(&mut ReaderRecord) + Send + 'static,
    ) -> StoreResult<()> {
        let _one_at_a_time = self.readers_lock.lock().await;
        let before = self.reader(login_id).await?;
        let mut after = ReaderRecord::clone(&before);
        change(&mut after);
        if after == *before {
            return Ok(());
        }
        let after = Arc::new(after);
        let saved = after.clone();
        store::blocking(&self.storage, move |s| s.save_reader(&saved)).await?;
        self.remember_reader(after);
        Ok(())
    }

    /// Remembers that the login has seen the room up to `id`.
    pub async fn mark_read(&self, login_id: &str, room: &Slug, id: u64) -> StoreResult<()> {
        // Every page view marks its room read: most change nothing, and need not queue
        // behind other logins' updates to find that out. Marks only grow, so a cached
        // one at or past `id` stays right.
        let seen = self
            .readers
            .lock()
            .expect("readers lock")
            .get(login_id)
            .and_then(|reader| reader.last_read.get(room.as_str()).copied());
        if seen.is_some_and(|seen| seen >= id as i64) {
            return Ok(());
        }
        let slug = room.as_str().to_owned();
        self.update_reader(login_id, move |reader| {
            let seen = reader.last_read.entry(slug).or_insert(0);
            *seen = (*seen).max(id as i64);
        })
        .await
    }

    /// Mutes or unmutes a room for the login.
    pub async fn toggle_mute(&self, login_id: &str, room: &Slug) -> StoreResult<()> {
        let slug = room.as_str().to_owned();
        self.update_reader(login_id, move |reader| {
            if let Some(at) = reader.muted.iter().position(|m| *m == slug) {
                reader.muted.remove(at);
            } else {
                reader.muted.push(slug);
            }
        })
        .await
    }
}
