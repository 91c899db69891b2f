//! Hearing the other instances that share the database. Each announcement names a room;
//! this instance reads what is new there from the store, by id, renders it once and shows
//! it to its own subscribers through the same gate as its committer's messages
//! ([`Room::publish_stored`]), so nothing is shown twice or out of order.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::room::render;
use super::{Hub, Room};
use crate::domain::Slug;
use crate::store::{Announcement, Announcements, RoomHead, RoomRecord, StoreError, StoreResult};

/// How long one wait for announcements lasts: how soon the thread notices the hub is gone.
const WAIT: Duration = Duration::from_secs(1);

/// Starts the thread that listens (the client blocks; no async worker may).
pub(super) fn spawn(hub: &Arc<Hub>, announcements: Box<dyn Announcements>) -> StoreResult<()> {
    let hub = Arc::downgrade(hub);
    thread::Builder::new()
        .name("listener".into())
        .spawn(move || listen(hub, announcements))
        .map_err(|e| StoreError::Database(format!("cannot start the listener: {e}")))?;
    Ok(())
}

fn listen(hub: Weak<Hub>, mut announcements: Box<dyn Announcements>) {
    let mut swept = Instant::now();
    loop {
        let heard = announcements.next(WAIT);
        let Some(hub) = hub.upgrade() else {
            return;
        };
        if hub.shutdown.is_cancelled() {
            return;
        }
        for announcement in heard {
            if let Err(e) = hub.hear(&announcement) {
                tracing::warn!(error = %e, ?announcement, "could not follow another instance");
            }
        }
        // An announcement is sent after its commit and may be lost (the NOTIFY failed): a
        // quiet room would then wait for its next message. As often as the heartbeat,
        // every room is compared with the store.
        if swept.elapsed() >= hub.settings.instance_timeout / 4 {
            swept = Instant::now();
            if let Err(e) = hub.catch_up_rooms() {
                tracing::warn!(error = %e, "could not compare the rooms with the database");
            }
        }
    }
}

impl Hub {
    fn hear(&self, announcement: &Announcement) -> StoreResult<()> {
        match announcement {
            Announcement::Appended { room, last_id } => self.follow_appended(room, *last_id),
            Announcement::Changed { room, id } => self.follow_changed(room, *id),
            Announcement::Room { room } => match self.storage.room(room)? {
                Some(record) => {
                    self.follow_room(record);
                    Ok(())
                }
                None => Ok(()),
            },
            Announcement::LoginEnded { login_id, why } => {
                self.end_login_because(login_id, *why);
                Ok(())
            }
            Announcement::LeftRoom { login_id, room } => {
                self.end_room_sockets(login_id, room);
                Ok(())
            }
            Announcement::Presence { room } => {
                let shown = self
                    .storage
                    .presence_elsewhere(Some(room), self.settings.instance_timeout)?;
                self.show_presence_elsewhere(Some(room), shown);
                Ok(())
            }
            Announcement::Bots => {
                self.bots_changed_elsewhere();
                Ok(())
            }
            Announcement::Missed => {
                self.bots_changed_elsewhere();
                let shown = self
                    .storage
                    .presence_elsewhere(None, self.settings.instance_timeout)?;
                self.show_presence_elsewhere(None, shown);
                self.catch_up_rooms()
            }
        }
    }

    /// Every room as the store has it: new rooms, changed records, and messages not yet
    /// shown here.
    fn catch_up_rooms(&self) -> StoreResult<()> {
        for record in self.storage.rooms()? {
            let head = RoomHead::from(&record);
            let room = self.follow_room(record);
            if room.last_id() < head.last_id.max(0) as u64 {
                room.publish_stored(self.storage.as_ref(), Vec::new(), &head, &self.metrics)?;
                self.sidebar_dirty.store(true, Ordering::Release);
            }
        }
        Ok(())
    }

    fn bots_changed_elsewhere(&self) {
        if let Some(hook) = self.bots_hook.get() {
            hook.changed_elsewhere();
        }
    }

    /// Shows the room's messages up to `last_id` (and any stored since).
    fn follow_appended(&self, slug: &Slug, last_id: u64) -> StoreResult<()> {
        if self
            .room(slug)
            .is_some_and(|room| room.last_id() >= last_id)
        {
            return Ok(());
        }
        let Some(record) = self.storage.room(slug)? else {
            return Ok(());
        };
        let head = RoomHead::from(&record);
        let room = self.follow_room(record);
        room.publish_stored(self.storage.as_ref(), Vec::new(), &head, &self.metrics)?;
        self.sidebar_dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Shows message `id` as it is now, if it is published here; one that is not yet comes
    /// as it is now with its room's messages.
    fn follow_changed(&self, slug: &Slug, id: u64) -> StoreResult<()> {
        let Some(room) = self.room(slug).filter(|room| id <= room.last_id()) else {
            return Ok(());
        };
        if let Some(record) = self.storage.messages(slug, id, id)?.pop() {
            room.republish(render(&record));
        }
        Ok(())
    }

    /// The room as `record` says, shown here: a room new to this instance is added, a known
    /// one takes the record's name, topic, archived state and members. Its messages are not
    /// touched.
    fn follow_room(&self, record: RoomRecord) -> Arc<Room> {
        let (room, added) = self.adopt_room(record.clone());
        let mut changed = added;
        if room.name() != record.name {
            room.show_name(record.name);
            changed = true;
        }
        if room.topic() != record.topic {
            room.show_topic(record.topic);
        }
        if room.is_archived() != record.archived {
            room.show_archived(record.archived);
            changed = true;
        }
        if room.members() != record.members {
            room.set_members(record.members);
            changed = true;
        }
        if changed {
            self.sidebar_dirty.store(true, Ordering::Release);
        }
        room
    }
}
