//! What instances sharing one database tell each other after they commit. An announcement
//! only says where to look: the listener reads what changed from the store, by id, so a
//! late or repeated announcement does no harm, and a lost one is made up by the next.

use std::time::Duration;

use crate::domain::Slug;
use crate::identity::LoginEnd;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// `room` has messages up to `last_id`.
    Appended { room: Slug, last_id: u64 },
    /// Message `id` of `room` changed: an edit, a deletion or a reaction.
    Changed { room: Slug, id: u64 },
    /// `room`'s record changed (its topic, name, archived state or members), or it was
    /// created.
    Room { room: Slug },
    /// Every session of a login ended (logout, or an admin removed it): its sockets close.
    LoginEnded { login_id: String, why: LoginEnd },
    /// A login left `room`: its sockets there close.
    LeftRoom { login_id: String, room: Slug },
    /// Who is here or typing in `room` changed on another instance.
    Presence { room: Slug },
    /// A bot was created, changed (its token, its webhook) or deleted.
    Bots,
    /// Announcements may have been missed (the listener just started, or reconnected): look
    /// at every room.
    Missed,
}

/// Announcements from the other instances, as they arrive.
pub trait Announcements: Send {
    /// Waits up to `wait` for announcements; empty when none came. Reconnects by itself
    /// after a lost connection, and then says [`Announcement::Missed`].
    fn next(&mut self, wait: Duration) -> Vec<Announcement>;
}
