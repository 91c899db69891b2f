//! A room's topic, name and archived state, stored and then shown live.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Hub, NewMessage, Room};
use crate::domain::RoomName;
use crate::store::{self, StoreResult};

impl Hub {
    /// Changes a room's topic, stores it, and tells the room.
    pub async fn set_topic(&self, room: &Arc<Room>, topic: String, by: &str) -> StoreResult<()> {
        let slug = room.slug.clone();
        let stored = topic.clone();
        store::blocking(&self.storage, move |s| s.set_topic(&slug, &stored)).await?;
        room.show_topic(topic.clone());
        let line = if topic.is_empty() {
            format!("{by} cleared the topic")
        } else {
            format!("{by} set the topic to “{topic}”")
        };
        self.post(room, NewMessage::system(by, line)).await?;
        Ok(())
    }

    /// An admin renamed the room: stored, then the header and every sidebar follow live.
    pub async fn rename_room(
        &self,
        room: &Arc<Room>,
        name: &RoomName,
        by: &str,
    ) -> StoreResult<()> {
        let slug = room.slug.clone();
        let stored = name.as_str().to_owned();
        store::blocking(&self.storage, move |s| s.rename_room(&slug, &stored)).await?;
        room.show_name(name.as_str().to_owned());
        self.sidebar_dirty.store(true, Ordering::Release);
        let line = format!("{by} renamed the room to “{}”", name.as_str());
        self.post(room, NewMessage::system(by, line)).await?;
        Ok(())
    }

    /// An admin archived (read-only) or reopened the room. The line goes into the stream
    /// first, so it is the last thing an archived room says.
    pub async fn set_archived(
        &self,
        room: &Arc<Room>,
        archived: bool,
        by: &str,
    ) -> StoreResult<()> {
        let slug = room.slug.clone();
        store::blocking(&self.storage, move |s| s.set_archived(&slug, archived)).await?;
        let line = if archived {
            format!("{by} archived the room")
        } else {
            format!("{by} reopened the room")
        };
        self.post(room, NewMessage::system(by, line)).await?;
        room.show_archived(archived);
        self.sidebar_dirty.store(true, Ordering::Release);
        Ok(())
    }
}
