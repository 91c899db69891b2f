//! Who is here and who is typing, flushed by one ticker at most once per interval.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use tokio::time::Instant;

use super::{Hub, NewMessage, Room, SidebarUpdate};
use crate::domain::Nickname;
use crate::views;

impl Hub {
    /// A socket of `nickname` opened in the room. The first tab announces a join, unless the
    /// person was only reloading.
    pub fn arrive(&self, room: &Arc<Room>, person: &Nickname) {
        let nickname = person.as_str();
        let announce = {
            let mut presence = room.presence.lock().expect("presence lock");
            let tabs = presence.tabs.entry(nickname.to_owned()).or_insert(0);
            *tabs += 1;
            let first_tab = *tabs == 1;
            let returning = presence.leaving.remove(nickname).is_some();
            presence.presence_changed = true;
            // An archived room says nothing more, arrivals included.
            first_tab
                && !returning
                && !room.is_archived()
                && presence.tabs.len() <= self.settings.announce_limit
                && self.started.elapsed() >= self.settings.quiet_after_start
        };
        if announce {
            drop(self.submit(
                room,
                NewMessage::system(nickname, format!("{nickname} joined")),
            ));
        }
    }

    /// A socket of `nickname` closed. The last tab starts the leave debounce.
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
        for room in rooms {
            let (here, typing, departed) = {
                let mut presence = room.presence.lock().expect("presence lock");
                let debounce = self.settings.leave_debounce;
                let mut departed = Vec::new();
                presence.leaving.retain(|name, since| {
                    let gone = now.duration_since(*since) >= debounce;
                    if gone {
                        departed.push(name.clone());
                    }
                    !gone
                });
                let typing_before = presence.typing.len();
                presence.typing.retain(|_, until| *until > now);
                if presence.typing.len() != typing_before {
                    presence.typing_changed = true;
                }
                if !departed.is_empty() {
                    presence.presence_changed = true;
                }
                let here = std::mem::take(&mut presence.presence_changed).then(|| presence.here());
                let typing = std::mem::take(&mut presence.typing_changed)
                    .then(|| presence.typing.keys().cloned().collect::<Vec<_>>());
                let quiet =
                    presence.tabs.len() <= self.settings.announce_limit && !room.is_archived();
                (here, typing, if quiet { departed } else { Vec::new() })
            };
            if let Some(here) = here {
                room.replace(views::presence_fragment(&here));
            }
            if let Some(typing) = typing {
                room.replace(views::typing_fragment(&typing));
            }
            for name in departed {
                drop(self.submit(&room, NewMessage::system(&name, format!("{name} left"))));
            }
        }
        if self.sidebar_dirty.swap(false, Ordering::AcqRel) {
            let _ = self
                .sidebar
                .send(Arc::new(SidebarUpdate::new(self.room_summaries())));
        }
    }
}
