//! Each login's open sockets: the per-login cap, ending them all at logout, and ending those
//! in a room the login leaves.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use super::{Hub, MAX_SOCKETS_PER_LOGIN, Room};
use crate::domain::Slug;
use crate::identity::LoginEnd;

/// The close reason of a socket whose login left its room (in another tab, or on another
/// instance): the page says so and does not reconnect.
const LEFT_THE_ROOM: &str = "left the room";

pub(super) struct LoginSockets {
    open: usize,
    ended: CancellationToken,
    /// Why the login ended, for its sockets' close frames; set just before `ended` fires.
    why: Arc<OnceLock<LoginEnd>>,
    /// The rooms it has sockets in: a few at most, so a list.
    rooms: Vec<RoomSockets>,
}

/// A login's sockets in one room, and what closes them when it leaves the room: a child of
/// the login's token, so logging out closes them too.
struct RoomSockets {
    room: Slug,
    open: usize,
    left: CancellationToken,
}

impl Hub {
    /// Counts a new socket for a login, in `room` (`None` for the global socket), or refuses
    /// it over the cap. The guard uncounts it.
    pub fn open_socket(
        self: &Arc<Self>,
        login_id: &str,
        room: Option<&Arc<Room>>,
    ) -> Option<SocketGuard> {
        let mut logins = self.logins.lock().expect("logins lock");
        let entry = logins
            .entry(login_id.to_owned())
            .or_insert_with(|| LoginSockets {
                open: 0,
                ended: CancellationToken::new(),
                why: Arc::new(OnceLock::new()),
                rooms: Vec::new(),
            });
        if entry.open >= MAX_SOCKETS_PER_LOGIN {
            return None;
        }
        entry.open += 1;
        let ended = match room {
            Some(room) => match entry.rooms.iter_mut().find(|r| r.room == room.slug) {
                Some(sockets) => {
                    sockets.open += 1;
                    sockets.left.clone()
                }
                None => {
                    let left = entry.ended.child_token();
                    entry.rooms.push(RoomSockets {
                        room: room.slug.clone(),
                        open: 1,
                        left: left.clone(),
                    });
                    left
                }
            },
            None => entry.ended.clone(),
        };
        self.metrics.sockets.increment(1.0);
        Some(SocketGuard {
            hub: self.clone(),
            login_id: login_id.to_owned(),
            login_ended: entry.ended.clone(),
            ended,
            why: entry.why.clone(),
            room: room.cloned(),
        })
    }

    /// Closes a login's sockets in a room it left, here (see `LEFT_THE_ROOM`).
    pub fn end_room_sockets(&self, login_id: &str, room: &Slug) {
        let mut logins = self.logins.lock().expect("logins lock");
        if let Some(entry) = logins.get_mut(login_id)
            && let Some(at) = entry.rooms.iter().position(|r| r.room == *room)
        {
            entry.rooms.swap_remove(at).left.cancel();
        }
    }

    /// The logins that have sockets open.
    pub fn logins_with_sockets(&self) -> Vec<String> {
        self.logins
            .lock()
            .expect("logins lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Ends every socket of a login (logout): they close with 1008.
    pub fn end_login(&self, login_id: &str) {
        self.end_login_because(login_id, LoginEnd::LoggedOut);
    }

    /// Ends every socket of a login with 1008 and `why` as the close reason.
    pub fn end_login_because(&self, login_id: &str, why: LoginEnd) {
        if let Some(entry) = self.logins.lock().expect("logins lock").remove(login_id) {
            let _ = entry.why.set(why);
            entry.ended.cancel();
        }
    }
}

/// One counted socket of a login.
pub struct SocketGuard {
    hub: Arc<Hub>,
    login_id: String,
    /// Cancelled when the login ends: its entry is gone then, with nothing left to uncount.
    login_ended: CancellationToken,
    /// Cancelled when the login ends or, for a room's socket, leaves the room.
    ended: CancellationToken,
    why: Arc<OnceLock<LoginEnd>>,
    room: Option<Arc<Room>>,
}

impl SocketGuard {
    /// Cancelled when the login ends or leaves the socket's room.
    pub fn ended(&self) -> &CancellationToken {
        &self.ended
    }

    /// Why, once [`SocketGuard::ended`] has fired: the login's end, or leaving the room.
    pub fn end_reason(&self) -> &'static str {
        match self.why.get() {
            Some(why) => why.reason(),
            None if !self.login_ended.is_cancelled() => LEFT_THE_ROOM,
            None => LoginEnd::LoggedOut.reason(),
        }
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.hub.metrics.sockets.decrement(1.0);
        if self.login_ended.is_cancelled() {
            return;
        }
        let mut logins = self.hub.logins.lock().expect("logins lock");
        let Some(entry) = logins.get_mut(&self.login_id) else {
            return;
        };
        entry.open -= 1;
        // A room left took its count with it; one opened again since counts anew.
        if let Some(room) = &self.room
            && !self.ended.is_cancelled()
            && let Some(at) = entry.rooms.iter().position(|r| r.room == room.slug)
        {
            entry.rooms[at].open -= 1;
            if entry.rooms[at].open == 0 {
                entry.rooms.swap_remove(at);
            }
        }
        if entry.open == 0 {
            logins.remove(&self.login_id);
        }
    }
}
