//! Upgrades of stored data, run once when a database (or a restored backup) written by an
//! older version is first opened, before anything reads it.
//!
//! **Logins (version 1).** Messages, direct conversations and mention marks used to name
//! people by nickname string only. What a person wrote before the upgrade goes to the login
//! holding its nickname now only if that login provably existed when it was written: its
//! session is live and one of its messages, stored with a client id, is at least as old (the
//! resend record names the login). Everything else goes to the *former holder* of that
//! nickname, a login nobody holds (`identity::former_holder_handle`): it is kept and shown
//! under the name it had, and nobody can edit it; a direct conversation of theirs is
//! readable by nobody in the web UI (the operator's export still has it). Bots' messages go
//! to their bot, whose identity never changed hands.
//!
//! **Counted messages (version 2).** Unread counts only what people and bots say, not system
//! lines, so each room gains its count of such messages and each member's read mark the
//! count as of its id. Both come from one pass over each room's messages.

use std::collections::HashMap;

use super::{
    DirectMember, MessageKind, MessageRecord, RoomRecord, Storage, StoreResult, bot_login_id,
};
use crate::domain::Nickname;
use crate::identity::{former_holder_handle, login_handle};

/// The settings key of the stored data's version.
const VERSION_KEY: &str = "data_version";
/// What this build writes.
const CURRENT: u32 = 2;
/// Messages read and rewritten per commit.
const PAGE: u64 = 500;

/// What an upgrade changed, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Upgraded {
    pub messages: u64,
    pub conversations: u64,
    /// Rooms whose messages were counted.
    pub rooms_counted: u64,
}

/// Brings stored data up to this build's version; does nothing if it is already there.
pub fn upgrade(storage: &dyn Storage) -> StoreResult<Upgraded> {
    let version: u32 = storage
        .setting(VERSION_KEY)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut upgraded = Upgraded::default();
    if version < 1 {
        upgraded = to_logins(storage)?;
        tracing::info!(
            messages = upgraded.messages,
            conversations = upgraded.conversations,
            "stored data upgraded: authorship belongs to logins"
        );
    }
    if version < 2 {
        upgraded.rooms_counted = count_messages(storage)?;
        tracing::info!(
            rooms = upgraded.rooms_counted,
            "stored data upgraded: rooms count the messages that count as unread"
        );
    }
    if version < CURRENT {
        storage.put_setting(VERSION_KEY, &CURRENT.to_string())?;
    }
    Ok(upgraded)
}

fn to_logins(storage: &dyn Storage) -> StoreResult<Upgraded> {
    let bot_handles: HashMap<String, String> = storage
        .bots()?
        .into_iter()
        .map(|bot| {
            let handle = login_handle(&bot_login_id(&bot.id));
            (bot.name, handle)
        })
        .collect();
    let proven = proven_holders(storage)?;
    // The login a name's words from `at` (Unix milliseconds) belong to.
    let handle_of = |name: &str, bot: bool, at: i64| {
        if let Some(handle) = bot_handles.get(name).filter(|_| bot) {
            return handle.clone();
        }
        let key = nickname_key(name);
        match proven.get(&key) {
            Some(holder) if at >= holder.since => holder.handle.clone(),
            _ => former_holder_handle(&key),
        }
    };
    let mut upgraded = Upgraded::default();
    for mut room in storage.rooms()? {
        let last = room.last_id.max(0) as u64;
        let mut from = 1;
        while from <= last {
            let to = (from + PAGE - 1).min(last);
            let changed: Vec<MessageRecord> = storage
                .messages(&room.slug, from, to)?
                .into_iter()
                .filter(|m| m.kind == MessageKind::User && m.login.is_empty())
                .map(|mut m| {
                    m.login = handle_of(&m.author, m.bot, m.created_at);
                    m
                })
                .collect();
            upgraded.messages += changed.len() as u64;
            if !changed.is_empty() {
                storage.rewrite(&changed, &[])?;
            }
            from = to + 1;
        }
        // Marks named people by mention key; they can't be tied to a login.
        let marks_dropped = !room.mentions.is_empty();
        room.mentions.clear();
        let direct = room.slug.direct_members().is_some() && room.members.is_empty();
        if direct {
            room.members = earlier_members(&room, &handle_of);
            upgraded.conversations += 1;
        }
        if direct || marks_dropped {
            storage.rewrite(&[], &[room])?;
        }
    }
    Ok(upgraded)
}

/// Sets each room's count of messages that count as unread, and each reader's count as of
/// its mark in that room; returns how many rooms were counted.
fn count_messages(storage: &dyn Storage) -> StoreResult<u64> {
    let mut readers = storage.readers()?;
    // Per room: every reader's mark, as (message id, index into `readers`), lowest first.
    let mut marks: HashMap<String, Vec<(i64, usize)>> = HashMap::new();
    for (at, reader) in readers.iter().enumerate() {
        for (room, &id) in &reader.last_read {
            marks.entry(room.clone()).or_default().push((id, at));
        }
    }
    for room_marks in marks.values_mut() {
        room_marks.sort_unstable();
    }
    let mut rooms = 0;
    for mut room in storage.rooms()? {
        let slug = room.slug.as_str().to_owned();
        let mut pending = marks
            .remove(&slug)
            .unwrap_or_default()
            .into_iter()
            .peekable();
        let mut counted = 0;
        let last = room.last_id.max(0) as u64;
        let mut from = 1;
        while from <= last {
            let to = (from + PAGE - 1).min(last);
            for message in storage.messages(&room.slug, from, to)? {
                // A mark below this message has seen what was counted so far.
                while let Some((_, at)) = pending.next_if(|&(id, _)| id < message.id) {
                    readers[at].read_counted.insert(slug.clone(), counted);
                }
                if message.kind.counts() {
                    counted += 1;
                }
            }
            from = to + 1;
        }
        for (_, at) in pending {
            readers[at].read_counted.insert(slug.clone(), counted);
        }
        room.counted = counted;
        storage.rewrite(&[], &[room])?;
        rooms += 1;
    }
    for reader in readers.iter().filter(|r| !r.read_counted.is_empty()) {
        storage.save_reader(reader)?;
    }
    Ok(rooms)
}

/// A nickname's holder now, and since when it provably held it.
struct ProvenHolder {
    handle: String,
    /// Unix milliseconds of its oldest message stored with a client id.
    since: i64,
}

/// By nickname key: the logins with a live session whose resend records show they wrote
/// under the nickname they hold now, and since when.
fn proven_holders(storage: &dyn Storage) -> StoreResult<HashMap<String, ProvenHolder>> {
    let now = crate::clock::now_millis() / 1000;
    let mut live: HashMap<String, bool> = HashMap::new();
    // Login id → (the name of its oldest message, when it was written).
    let mut oldest: HashMap<String, (String, i64)> = HashMap::new();
    for record in storage.dedup_records()? {
        // Written as `{login}/{client_id}` before logins were recorded.
        let Some((login, _)) = record.key.split_once('/') else {
            continue;
        };
        let is_live = match live.get(login) {
            Some(&known) => known,
            None => {
                let known = storage.login_is_live(login, now)?;
                live.insert(login.to_owned(), known);
                known
            }
        };
        if !is_live {
            continue;
        }
        let id = record.id.max(0) as u64;
        let Some(message) = storage.messages(&record.room, id, id)?.pop() else {
            continue;
        };
        let entry = oldest
            .entry(login.to_owned())
            .or_insert_with(|| (message.author.clone(), message.created_at));
        if message.created_at < entry.1 {
            *entry = (message.author, message.created_at);
        }
    }
    let mut proven = HashMap::new();
    for (login, (name, since)) in oldest {
        let key = nickname_key(&name);
        if storage.claim(&key)?.is_some_and(|c| c.login_id == login) {
            let handle = login_handle(&login);
            proven.insert(key, ProvenHolder { handle, since });
        }
    }
    Ok(proven)
}

/// A direct conversation named "alice & bob" by two mention keys in its slug, as the logins
/// its two names belonged to when it was created (a bot is still itself).
fn earlier_members(
    room: &RoomRecord,
    handle_of: &dyn Fn(&str, bool, i64) -> String,
) -> Vec<DirectMember> {
    let Some((a, b)) = room.slug.direct_members() else {
        return Vec::new();
    };
    let names: Vec<&str> = room.name.split(" & ").collect();
    [a, b]
        .into_iter()
        .map(|key| {
            let name = names
                .iter()
                .find(|name| Nickname::parse(name).is_ok_and(|n| n.mention_key() == key))
                .copied()
                .unwrap_or(key);
            DirectMember {
                login: handle_of(name, true, room.created_at),
                name: name.to_owned(),
                former: false,
            }
        })
        .collect()
}

/// The nickname key of a stored name; one that no longer parses keys as itself.
fn nickname_key(name: &str) -> String {
    Nickname::parse(name).map_or_else(|_| name.to_lowercase(), |n| n.key())
}
