//! Announcements between instances by LISTEN/NOTIFY: what a commit says on the `chat`
//! channel, and the connection of its own that hears the others.
//!
//! A payload is `{origin} {kind} {room}[ {id}]`: `a` messages up to `id` were appended, `c`
//! message `id` changed, `r` the room's record changed; or `{origin} l {login} out|removed`:
//! every session of a login ended; `{origin} m {room} {login}`: a login left a room;
//! `{origin} p {room}`: who is here or typing there changed on
//! that instance; or `{origin} b *`: a bot was created, changed or
//! deleted. `origin` is the announcing store's
//! own random id, so a listener can skip what its own instance did and showed already;
//! appends are heard from everyone, as a safety net for anything the committer could not
//! show at once.

use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, GenericClient, NoTls};

use super::super::announcements::{Announcement, Announcements};
use super::super::{RoomHead, StoreResult};
use crate::domain::Slug;
use crate::identity::LoginEnd;

/// The one channel every instance listens on.
const CHANNEL: &str = "chat";
/// How long a lost listening connection waits before it tries again.
const RECONNECT_WAIT: Duration = Duration::from_secs(1);
/// After this long without a notification the connection is checked, so a dead peer that
/// never closed the socket is noticed.
const QUIET_CHECK: Duration = Duration::from_secs(10);

/// A new random id for a store, to recognise its own announcements.
pub(super) fn new_origin() -> String {
    format!("{:016x}", rand::random::<u64>())
}

pub(super) fn appended(origin: &str, heads: &[RoomHead]) -> Vec<String> {
    heads
        .iter()
        .map(|head| format!("{origin} a {} {}", head.slug, head.last_id))
        .collect()
}

pub(super) fn changed(origin: &str, room: &Slug, id: i64) -> Vec<String> {
    vec![format!("{origin} c {room} {id}")]
}

pub(super) fn room_changed(origin: &str, room: &Slug) -> Vec<String> {
    vec![format!("{origin} r {room}")]
}

pub(super) fn left_room(origin: &str, room: &Slug, login_id: &str) -> Vec<String> {
    vec![format!("{origin} m {room} {login_id}")]
}

pub(super) fn presence_changed(origin: &str, room: &Slug) -> Vec<String> {
    vec![format!("{origin} p {room}")]
}

pub(super) fn bots_changed(origin: &str) -> Vec<String> {
    vec![format!("{origin} b *")]
}

pub(super) fn login_ended(origin: &str, login_id: &str, why: LoginEnd) -> Vec<String> {
    let why = match why {
        LoginEnd::LoggedOut => "out",
        LoginEnd::Removed => "removed",
    };
    vec![format!("{origin} l {login_id} {why}")]
}

/// Sends the payloads with the transaction `client` is in: they go out when it commits.
pub(super) fn announce_in_commit(
    client: &mut impl GenericClient,
    payloads: &[String],
) -> StoreResult<()> {
    if !payloads.is_empty() {
        client.execute(
            "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload",
            &[&CHANNEL, &payloads],
        )?;
    }
    Ok(())
}

/// Sends the payloads after a commit, in one round trip. Their own little transaction
/// doesn't wait for its commit to reach the disk: an announcement needs no durability (the
/// next one for the room makes up for a lost one, since listeners read by id up to the
/// newest), and the commit it announces stands whatever happens here.
pub(super) fn announce_after_commit(client: &mut impl GenericClient, payloads: &[String]) {
    if payloads.is_empty() {
        return;
    }
    let notifies: String = payloads
        .iter()
        .map(|payload| format!("SELECT pg_notify('{CHANNEL}', {});", sql_literal(payload)))
        .collect();
    let sent = client.batch_execute(&format!(
        "BEGIN; SET LOCAL synchronous_commit = off; {notifies} COMMIT;"
    ));
    if let Err(e) = sent {
        tracing::warn!(error = %e, "announcing a commit to the other instances failed");
        // The connection goes back to the pool: not in a failed transaction.
        let _ = client.batch_execute("ROLLBACK");
    }
}

/// A string as an SQL literal (`standard_conforming_strings`, PostgreSQL's default).
fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// One connection that LISTENs, opened on first use and again after it is lost.
pub(super) struct Listener {
    config: postgres::Config,
    origin: String,
    client: Option<Client>,
    last_heard: Instant,
}

impl Listener {
    pub(super) fn new(config: postgres::Config, origin: String) -> Listener {
        Listener {
            config,
            origin,
            client: None,
            last_heard: Instant::now(),
        }
    }

    /// Connects and listens; then anything may have been missed, so says so.
    fn connect(&mut self, wait: Duration) -> Vec<Announcement> {
        let listening = self.config.connect(NoTls).and_then(|mut client| {
            client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            Ok(client)
        });
        match listening {
            Ok(client) => {
                self.client = Some(client);
                self.last_heard = Instant::now();
                vec![Announcement::Missed]
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen to the other instances; retrying");
                std::thread::sleep(wait.min(RECONNECT_WAIT));
                Vec::new()
            }
        }
    }

    /// The payloads that arrive within `wait`, or the error that lost the connection.
    fn receive(client: &mut Client, wait: Duration) -> Result<Vec<String>, postgres::Error> {
        let mut notifications = client.notifications();
        let Some(first) = notifications.timeout_iter(wait).next()? else {
            return Ok(Vec::new());
        };
        let mut payloads = vec![first.payload().to_owned()];
        let mut ready = notifications.iter();
        while let Some(more) = ready.next()? {
            payloads.push(more.payload().to_owned());
        }
        Ok(payloads)
    }

    fn parse(&self, payload: &str) -> Option<Announcement> {
        let mut parts = payload.split(' ');
        let (origin, kind, subject) = (parts.next()?, parts.next()?, parts.next()?);
        if kind == "l" {
            let why = match parts.next()? {
                "out" => LoginEnd::LoggedOut,
                "removed" => LoginEnd::Removed,
                _ => return None,
            };
            return (origin != self.origin).then(|| Announcement::LoginEnded {
                login_id: subject.to_owned(),
                why,
            });
        }
        if kind == "b" {
            return (origin != self.origin).then_some(Announcement::Bots);
        }
        let room = Slug::parse(subject)?;
        let mut id = || parts.next()?.parse::<u64>().ok();
        match kind {
            "a" => Some(Announcement::Appended {
                room,
                last_id: id()?,
            }),
            _ if origin == self.origin => None,
            "c" => Some(Announcement::Changed { room, id: id()? }),
            "r" => Some(Announcement::Room { room }),
            "p" => Some(Announcement::Presence { room }),
            "m" => Some(Announcement::LeftRoom {
                login_id: parts.next()?.to_owned(),
                room,
            }),
            _ => None,
        }
    }
}

impl Announcements for Listener {
    fn next(&mut self, wait: Duration) -> Vec<Announcement> {
        let Some(client) = self.client.as_mut() else {
            return self.connect(wait);
        };
        let received = Listener::receive(client, wait).and_then(|payloads| {
            if !payloads.is_empty() {
                self.last_heard = Instant::now();
            } else if client.is_closed() || self.last_heard.elapsed() > QUIET_CHECK {
                client.is_valid(QUIET_CHECK)?;
                self.last_heard = Instant::now();
            }
            Ok(payloads)
        });
        match received {
            Ok(payloads) => payloads.iter().filter_map(|p| self.parse(p)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "lost the connection that listens to the other instances");
                // Closed on a thread of its own: dropping a client blocks.
                if let Some(lost) = self.client.take() {
                    let _ = std::thread::Builder::new()
                        .name("postgres-close".into())
                        .spawn(move || drop(lost));
                }
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_skips_its_own_changes_but_never_appends() {
        let listener = Listener::new(postgres::Config::new(), "me".into());
        let lobby = Slug::lobby();
        let head = RoomHead {
            slug: lobby.clone(),
            last_id: 7,
            counted: 7,
            last_activity: 0,
            mentions: Vec::new(),
        };
        for origin in ["me", "other"] {
            assert_eq!(
                listener.parse(&appended(origin, std::slice::from_ref(&head))[0]),
                Some(Announcement::Appended {
                    room: lobby.clone(),
                    last_id: 7
                })
            );
        }
        assert_eq!(listener.parse(&changed("me", &lobby, 3)[0]), None);
        assert_eq!(
            listener.parse(&changed("other", &lobby, 3)[0]),
            Some(Announcement::Changed {
                room: lobby.clone(),
                id: 3
            })
        );
        assert_eq!(
            listener.parse(&left_room("other", &lobby, "l0gin")[0]),
            Some(Announcement::LeftRoom {
                login_id: "l0gin".into(),
                room: lobby.clone()
            })
        );
        assert_eq!(listener.parse(&left_room("me", &lobby, "l0gin")[0]), None);
        assert_eq!(
            listener.parse(&room_changed("other", &lobby)[0]),
            Some(Announcement::Room { room: lobby })
        );
        assert_eq!(listener.parse("garbage"), None);
        let ended = &login_ended("other", "l0gin", LoginEnd::Removed)[0];
        assert_eq!(
            listener.parse(ended),
            Some(Announcement::LoginEnded {
                login_id: "l0gin".into(),
                why: LoginEnd::Removed
            })
        );
        assert_eq!(
            listener.parse(&login_ended("me", "l0gin", LoginEnd::LoggedOut)[0]),
            None
        );
    }

    #[test]
    fn a_payload_is_quoted_as_one_sql_literal() {
        assert_eq!(sql_literal("a1 r it's"), "'a1 r it''s'");
    }
}
