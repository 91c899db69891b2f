//! Which rooms exist: finding a room, who may read it, and opening new ones.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Hub, NewMessage, Room};
use crate::clock::now_millis;
use crate::domain::{Nickname, RoomName, Slug};
use crate::identity::login_handle;
use crate::store::{self, DirectMember, RoomRecord, StoreResult};

impl Hub {
    /// How many rooms there are, for `/metrics`.
    pub fn room_count(&self) -> usize {
        self.rooms.read().expect("rooms lock").len()
    }

    pub fn room(&self, slug: &Slug) -> Option<Arc<Room>> {
        self.rooms.read().expect("rooms lock").get(slug).cloned()
    }

    /// The room at this URL segment, if the login with this handle may read it: to anyone
    /// else a direct conversation does not exist.
    pub fn readable_room(&self, slug: &str, login: &str) -> Option<Arc<Room>> {
        Slug::parse(slug)
            .and_then(|slug| self.room(&slug))
            .filter(|room| room.readable_by(login))
    }
}

impl Hub {
    /// Whether the login with this handle may read `room`: search asks it of every hit. The
    /// same rule as every room path ([`Room::readable_by`]).
    pub fn can_read(&self, login: &str, room: &Slug) -> bool {
        self.room(room).is_some_and(|r| r.readable_by(login))
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

    /// The direct conversation between two logins, if it exists: under the slug their two
    /// handles make, or, begun before logins were recorded, under the one their names made
    /// (the upgrade gave it to them).
    pub fn direct_room(&self, me: &DirectMember, other: &DirectMember) -> Option<Arc<Room>> {
        let between =
            |room: &Arc<Room>| room.readable_by(&me.login) && room.readable_by(&other.login);
        if let Some(room) = self.room(&Slug::direct(&me.login, &other.login)) {
            return Some(room).filter(between);
        }
        self.rooms
            .read()
            .expect("rooms lock")
            .values()
            .find(|room| room.slug.direct_members().is_some() && between(room))
            .cloned()
    }

    /// The direct conversation between two logins, created by its first message: `me`
    /// is who writes it.
    pub async fn open_direct(
        &self,
        me: DirectMember,
        other: DirectMember,
    ) -> StoreResult<(Arc<Room>, bool)> {
        let slug = Slug::direct(&me.login, &other.login);
        let creator = me.name.clone();
        let name = format!("{} & {}", me.name, other.name);
        let record = RoomRecord {
            members: vec![me, other],
            ..RoomRecord::new(slug, name, &creator, now_millis())
        };
        self.open(record, &creator).await
    }

    async fn open(&self, record: RoomRecord, creator: &str) -> StoreResult<(Arc<Room>, bool)> {
        if let Some(room) = self.room(&record.slug) {
            return Ok((room, false));
        }
        let created = store::blocking(&self.storage, move |s| {
            if s.create_room(&record)? {
                return Ok((record, true));
            }
            // Created meanwhile, perhaps by another instance: as it is stored.
            let stored = s.room(&record.slug)?;
            Ok((stored.unwrap_or(record), false))
        });
        let (record, created) = created.await?;
        let (room, _) = self.adopt_room(record);
        // A direct conversation starts with its first message, not with a line about itself.
        if created && room.slug.direct_members().is_none() {
            let _ = self
                .post(
                    &room,
                    NewMessage::system(creator, format!("room created by {creator}")),
                )
                .await;
        }
        if created {
            self.sidebar_dirty.store(true, Ordering::Release);
        }
        Ok((room, created))
    }

    /// The room with `record`'s slug, added from the record if this instance doesn't know
    /// it yet; `true` if added.
    pub(super) fn adopt_room(&self, record: RoomRecord) -> (Arc<Room>, bool) {
        if let Some(room) = self.room(&record.slug) {
            return (room, false);
        }
        let mut rooms = self.rooms.write().expect("rooms lock");
        let mut added = false;
        let room = rooms
            .entry(record.slug.clone())
            .or_insert_with(|| {
                added = true;
                Arc::new(Room::from_record(record, self.first_revision))
            })
            .clone();
        (room, added)
    }

    /// A login no longer holds its nickname (someone else took it, or an admin removed it):
    /// in its direct conversations, the other person now sees it marked as a former holder.
    pub async fn nickname_passed_on(&self, login: &str) -> StoreResult<()> {
        let rooms: Vec<Arc<Room>> = self
            .rooms
            .read()
            .expect("rooms lock")
            .values()
            .filter(|room| room.members().iter().any(|m| m.login == login && !m.former))
            .cloned()
            .collect();
        for room in &rooms {
            let mut members = room.members();
            for member in members.iter_mut().filter(|m| m.login == login) {
                member.former = true;
            }
            let (slug, stored) = (room.slug.clone(), members.clone());
            store::blocking(&self.storage, move |s| s.set_members(&slug, &stored)).await?;
            room.set_members(members);
        }
        if !rooms.is_empty() {
            self.sidebar_dirty.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// The login holding this nickname now (a person's or a bot's), as a conversation
    /// names it.
    pub async fn holder(&self, nickname: &Nickname) -> StoreResult<Option<DirectMember>> {
        let key = nickname.key();
        let claim = store::blocking(&self.storage, move |s| s.holder(&key, now_millis())).await?;
        Ok(claim.map(|claim| DirectMember {
            login: login_handle(&claim.login_id),
            name: claim.nickname,
            former: false,
        }))
    }
}
