//! Who is here and who is typing, flushed by one ticker at most once per interval.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use tokio::time::Instant;

use super::{Hub, NewMessage, Room, SidebarUpdate};
use crate::domain::{Nickname, Slug};
use crate::store::RoomPresence;
use crate::views;

impl Hub {
    /// A socket of `nickname` opened in the room: they are here now. (Membership, and the
    /// "joined" line, come with opening the page; see `visit`.)
    pub fn arrive(&self, room: &Room, person: &Nickname) {
        let nickname = person.as_str();
        let mut presence = room.presence.lock().expect("presence lock");
        *presence.tabs.entry(nickname.to_owned()).or_insert(0) += 1;
        presence.leaving.remove(nickname);
        presence.presence_changed = true;
    }

    /// Posts a "joined" line unless the room is busy or the server has just started.
    pub(super) fn announce_join(&self, room: &Arc<Room>, person: &Nickname) {
        if self.started.elapsed() >= self.settings.quiet_after_start {
            let name = person.as_str();
            self.announce(room, NewMessage::system(name, format!("{name} joined")));
        }
    }

    /// Posts a "left" line unless the room is busy.
    pub(super) fn announce_leave(&self, room: &Arc<Room>, person: &Nickname) {
        let name = person.as_str();
        self.announce(room, NewMessage::system(name, format!("{name} left")));
    }

    /// A room with more than `announce_limit` people present, or archived, says nothing of
    /// who comes and goes.
    fn announce(&self, room: &Arc<Room>, line: NewMessage) {
        let present = room.presence.lock().expect("presence lock").present();
        if present <= self.settings.announce_limit && !room.is_archived() {
            drop(self.submit(room, line));
        }
    }

    /// A socket of `nickname` closed. The last tab starts the debounce before they are
    /// shown as gone, so a reload doesn't flicker them out of "Here now".
    pub fn depart(&self, room: &Arc<Room>, person: &Nickname) {
        let nickname = person.as_str();
        let mut presence = room.presence.lock().expect("presence lock");
        if let Some(tabs) = presence.tabs.get_mut(nickname) {
            *tabs -= 1;
            if *tabs == 0 {
                presence.tabs.remove(nickname);
                presence.typing.remove(nickname);
                presence.leaving.insert(nickname.to_owned(), Instant::now());
                presence.typing_changed = true;
            }
        }
    }

    /// `nickname` is typing in the room (throttled by the page).
    pub fn typing(&self, room: &Room, person: &Nickname) {
        let nickname = person.as_str();
        let mut presence = room.presence.lock().expect("presence lock");
        let until = Instant::now() + self.settings.typing_expiry;
        if presence.typing.insert(nickname.to_owned(), until).is_none() {
            presence.typing_changed = true;
        }
    }

    /// A message from `nickname` ends their typing indicator.
    pub fn stopped_typing(&self, room: &Room, person: &Nickname) {
        let nickname = person.as_str();
        let mut presence = room.presence.lock().expect("presence lock");
        if presence.typing.remove(nickname).is_some() {
            presence.typing_changed = true;
        }
    }

    /// Starts the ticker that flushes presence, typing and the sidebar.
    pub fn spawn_ticker(self: &Arc<Self>) {
        let hub: Weak<Hub> = Arc::downgrade(self);
        let every = self.settings.flush_interval;
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            crate::periodic::every(every, &shutdown, || async {
                // Gone only once the server stopped, and the shutdown ends this loop too.
                if let Some(hub) = hub.upgrade() {
                    hub.flush_live_state();
                }
            })
            .await;
        });
    }

    fn flush_live_state(&self) {
        let now = Instant::now();
        let rooms: Vec<Arc<Room>> = self
            .rooms
            .read()
            .expect("rooms lock")
            .values()
            .cloned()
            .collect();
        let mut to_share = Vec::new();
        for room in rooms {
            let (here, typing) = {
                let mut presence = room.presence.lock().expect("presence lock");
                let debounce = self.settings.leave_debounce;
                let before = presence.leaving.len();
                presence
                    .leaving
                    .retain(|_, since| now.duration_since(*since) < debounce);
                if presence.leaving.len() != before {
                    presence.presence_changed = true;
                }
                let typing_before = presence.typing.len();
                presence.typing.retain(|_, until| *until > now);
                if presence.typing.len() != typing_before {
                    presence.typing_changed = true;
                }
                if self.presence_shares.is_some()
                    && (presence.presence_changed || presence.typing_changed)
                {
                    let own = (
                        presence.here_local(),
                        presence.typing.keys().cloned().collect(),
                    );
                    if own != presence.shared {
                        presence.shared = own.clone();
                        to_share.push(RoomPresence {
                            room: room.slug.clone(),
                            here: own.0,
                            typing: own.1,
                        });
                    }
                }
                let here = std::mem::take(&mut presence.presence_changed).then(|| presence.here());
                let typing =
                    std::mem::take(&mut presence.typing_changed).then(|| presence.typing());
                (here, typing)
            };
            if let Some(here) = here {
                room.replace(views::presence_fragment(&here));
            }
            if let Some(typing) = typing {
                room.replace(views::typing_fragment(&typing));
            }
        }
        if let Some(shares) = &self.presence_shares
            && !to_share.is_empty()
        {
            // The sharing thread is gone only once the hub is.
            let _ = shares.send(to_share);
        }
        if self.sidebar_dirty.swap(false, Ordering::AcqRel) {
            let _ = self
                .sidebar
                .send(Arc::new(SidebarUpdate::new(self.room_summaries())));
        }
    }

    /// Shows who the other instances sharing the database have here and typing, in `only`
    /// or (for `None`) in every room; a room `shown` leaves out has nobody elsewhere.
    pub(super) fn show_presence_elsewhere(&self, only: Option<&Slug>, shown: Vec<RoomPresence>) {
        let mut shown: std::collections::HashMap<Slug, RoomPresence> = shown
            .into_iter()
            .map(|entry| (entry.room.clone(), entry))
            .collect();
        let rooms: Vec<Arc<Room>> = match only {
            Some(slug) => self.room(slug).into_iter().collect(),
            None => self
                .rooms
                .read()
                .expect("rooms lock")
                .values()
                .cloned()
                .collect(),
        };
        for room in rooms {
            let (here, typing) = shown
                .remove(&room.slug)
                .map(|entry| (entry.here, entry.typing))
                .unwrap_or_default();
            room.presence
                .lock()
                .expect("presence lock")
                .show_elsewhere(here, typing);
        }
    }
}
