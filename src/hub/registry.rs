//! Which rooms exist: finding a room, who may read it, and opening new ones.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Hub, NewMessage, Room};
use crate::clock::now_millis;
use crate::domain::{Nickname, RoomName, Slug};
use crate::store::{self, RoomRecord, StoreResult};

impl Hub {
    /// How many rooms there are, for `/metrics`.
    pub fn room_count(&self) -> usize {
        self.rooms.read().expect("rooms lock").len()
    }

    pub fn room(&self, slug: &Slug) -> Option<Arc<Room>> {
        self.rooms.read().expect("rooms lock").get(slug).cloned()
    }

    /// The room at this URL segment, if the one with this mention key may read it: to anyone
    /// else a direct conversation does not exist.
    pub fn readable_room(&self, slug: &str, mention_key: &str) -> Option<Arc<Room>> {
        Slug::parse(slug)
            .and_then(|slug| self.room(&slug))
            .filter(|room| room.readable_by(mention_key))
    }
}

impl Hub {
    /// Whether the person with this mention key may read `room`: search asks it of every
    /// hit. The same rule as every room path ([`Room::readable_by`]).
    pub fn can_read(&self, mention_key: &str, room: &Slug) -> bool {
        self.room(room).is_some_and(|r| r.readable_by(mention_key))
    }
}

impl Hub {
    /// Returns the room with this name's slug, creating it if needed; `true` if created.
    pub async fn open_room(
        &self,
        name: &RoomName,
        creator: &str,
    ) -> StoreResult<(Arc<Room>, bool)> {
        let record = RoomRecord::new(
            name.slug().clone(),
            name.as_str().to_owned(),
            creator,
            now_millis(),
        );
        self.open(record, creator).await
    }

    /// The direct conversation between `me` and `other`, created on first use.
    pub async fn open_direct(
        &self,
        me: &Nickname,
        other: &Nickname,
    ) -> StoreResult<(Arc<Room>, bool)> {
        let slug = Slug::direct(&me.mention_key(), &other.mention_key());
        let record = RoomRecord::new(slug, format!("{me} & {other}"), me.as_str(), now_millis());
        self.open(record, me.as_str()).await
    }

    async fn open(&self, record: RoomRecord, creator: &str) -> StoreResult<(Arc<Room>, bool)> {
        if let Some(room) = self.room(&record.slug) {
            return Ok((room, false));
        }
        let insert = record.clone();
        let created = store::blocking(&self.storage, move |s| s.create_room(&insert)).await?;
        let room = {
            let mut rooms = self.rooms.write().expect("rooms lock");
            rooms
                .entry(record.slug.clone())
                .or_insert_with(|| Arc::new(Room::from_record(record, self.first_revision)))
                .clone()
        };
        if created {
            let _ = self
                .post(
                    &room,
                    NewMessage::system(creator, format!("room created by {creator}")),
                )
                .await;
            self.sidebar_dirty.store(true, Ordering::Release);
        }
        Ok((room, created))
    }

    /// Whether someone holds this nickname now, so a conversation with them can start.
    pub async fn nickname_is_held(&self, nickname: &Nickname) -> StoreResult<bool> {
        let key = nickname.key();
        Ok(store::blocking(&self.storage, move |s| s.claim(&key))
            .await?
            .is_some())
    }
}
