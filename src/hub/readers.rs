//! What each login has read and muted, cached in memory in front of the store, unless
//! other instances share the store (they change the same records).

use std::sync::Arc;

use super::{Hub, Room};
use crate::domain::{Nickname, Slug};
use crate::store::{self, ReaderRecord, StoreResult};

/// Reader records kept in memory at most; past it the cache starts over (they're on disk).
const READER_CACHE: usize = 10_000;

impl Hub {
    /// What a login has read and muted. Served from memory after the first read, since every
    /// page needs it (from the store each time, when it is shared).
    pub async fn reader(&self, login_id: &str) -> StoreResult<Arc<ReaderRecord>> {
        if let Some(cached) = self.cached_reader(login_id) {
            return Ok(cached);
        }
        let login = login_id.to_owned();
        let found = Arc::new(
            store::blocking(&self.storage, move |s| s.reader(&login))
                .await?
                .unwrap_or_else(|| ReaderRecord::empty(login_id)),
        );
        self.remember_reader(found.clone());
        Ok(found)
    }

    fn cached_reader(&self, login_id: &str) -> Option<Arc<ReaderRecord>> {
        if self.storage.is_shared() {
            return None;
        }
        let readers = self.readers.lock().expect("readers lock");
        readers.get(login_id).cloned()
    }

    fn remember_reader(&self, reader: Arc<ReaderRecord>) {
        if self.storage.is_shared() {
            return;
        }
        let mut readers = self.readers.lock().expect("readers lock");
        if readers.len() >= READER_CACHE {
            readers.clear();
        }
        readers.insert(reader.login_id.clone(), reader);
    }

    /// Read-modify-write of a login's reader record, one at a time; written only if `change`
    /// changed it, so reloading a page costs no disk write. Returns what `change` returned.
    async fn update_reader<T: Send + 'static>(
        &self,
        login_id: &str,
        change: impl FnOnce(&mut ReaderRecord) -> T + Send + 'static,
    ) -> StoreResult<T> {
        let _one_at_a_time = self.readers_lock.lock().await;
        let login = login_id.to_owned();
        let (after, changed) = store::blocking(&self.storage, move |s| {
            let mut result = None;
            let after =
                s.change_reader(&login, Box::new(|reader| result = Some(change(reader))))?;
            Ok((after, result.expect("change_reader calls the change")))
        })
        .await?;
        self.remember_reader(Arc::new(after));
        Ok(changed)
    }

    /// The login opened the room's page, which shows it everything up to `last_id`. The
    /// first visit makes it a member (again, if it had left): the one time a named room
    /// says "joined". `read` is its reader record as the page read it just before.
    pub async fn visit(
        &self,
        login_id: &str,
        person: &Nickname,
        room: &Arc<Room>,
        read: &ReaderRecord,
    ) -> StoreResult<()> {
        let joined = self
            .read_up_to(login_id, room, room.last_id(), true, Some(read))
            .await?;
        if joined && room.slug.direct_members().is_none() {
            self.announce_join(room, person);
        }
        Ok(())
    }

    /// The login made the room: a member from the start, with nothing to announce.
    pub async fn join_as_creator(&self, login_id: &str, room: &Arc<Room>) -> StoreResult<()> {
        self.read_up_to(login_id, room, room.last_id(), true, None)
            .await
            .map(drop)
    }

    /// Remembers that a member has seen the room up to `id` (a socket closing); does
    /// nothing for a login that is not one.
    pub async fn mark_read(&self, login_id: &str, room: &Arc<Room>, id: u64) -> StoreResult<()> {
        self.read_up_to(login_id, room, id, false, None)
            .await
            .map(drop)
    }

    /// Moves the login's mark in the room up to `id`, making it a member if `join`; returns
    /// whether it joined just now. `read` is the login's reader record if the caller has
    /// just read it.
    async fn read_up_to(
        &self,
        login_id: &str,
        room: &Arc<Room>,
        id: u64,
        join: bool,
        read: Option<&ReaderRecord>,
    ) -> StoreResult<bool> {
        // Every page view marks its room read: most change nothing, and need not queue
        // behind other logins' updates (or, with a shared store, take the login's lock) to
        // find that out. Marks only grow, so one read at or past `id` stays right.
        let slug = room.slug.as_str();
        let seen = match read {
            Some(reader) => reader.mark(slug),
            None => self
                .cached_reader(login_id)
                .and_then(|reader| reader.mark(slug)),
        };
        if seen.is_some_and(|seen| seen.id >= id) {
            return Ok(false);
        }
        let slug = room.slug.as_str().to_owned();
        let counted = room.counted_at(id) as i64;
        let id = id as i64;
        self.update_reader(login_id, move |reader| {
            let mut joined = false;
            if !reader.is_member(&slug) {
                if !join {
                    return false;
                }
                reader.left.retain(|r| *r != slug);
                joined = true;
            }
            let seen = reader.last_read.entry(slug.clone()).or_insert(0);
            if id > *seen {
                *seen = id;
                reader.read_counted.insert(slug, counted);
            }
            joined
        })
        .await
    }

    /// The login leaves the room: it is no longer a member, its unread count goes, the room
    /// is out of its sidebar until it opens it again, and its other tabs of the room close
    /// their sockets, on every instance (they would go on showing it "here", and posting as
    /// someone who left). Returns whether it was a member.
    pub async fn leave(
        &self,
        login_id: &str,
        person: &Nickname,
        room: &Arc<Room>,
    ) -> StoreResult<bool> {
        let slug = room.slug.as_str().to_owned();
        let was_member = self
            .update_reader(login_id, |reader| {
                let was_member = reader.last_read.remove(&slug).is_some();
                reader.read_counted.remove(&slug);
                if !reader.has_left(&slug) {
                    reader.left.push(slug);
                }
                was_member
            })
            .await?;
        if was_member {
            self.announce_leave(room, person);
        }
        self.end_room_sockets(login_id, &room.slug);
        // The leave is stored: a lost announcement only leaves other instances' tabs of the
        // room open until they reload, as announcements after a commit may be lost anyway.
        let (login, slug) = (login_id.to_owned(), room.slug.clone());
        if let Err(e) =
            store::blocking(&self.storage, move |s| s.announce_left_room(&login, &slug)).await
        {
            tracing::warn!(error = %e, "could not tell the other instances about a leave");
        }
        Ok(was_member)
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
