//! Appending messages: the store assigns each message its room's next id inside the commit,
//! and stores a resent message once. Both backends read the touched rooms and the known
//! resend keys in their transaction (PostgreSQL locks the rooms' rows first, so writers on
//! several instances take turns), then [`assign`] decides, the same way on both.

use std::collections::HashMap;

use super::{DedupRecord, MentionMark, MessageRecord, RoomRecord, StoreError, StoreResult};
use crate::domain::Slug;

/// Mention marks a room keeps; the oldest are forgotten first.
const MENTION_MARKS: usize = 64;

/// A message for [`Storage::append`](super::Storage::append): its record as it will be
/// stored but for its id (and key), which the store assigns.
#[derive(Debug, Clone)]
pub struct PendingMessage {
    pub record: MessageRecord,
    /// The `(login, client_id)` key a resend of it carries: a message whose key is stored
    /// already (or comes earlier in the batch) is not stored again.
    pub dedup_key: Option<String>,
    /// The ids of the bots whose webhooks get it. A [shared](super::Storage::is_shared)
    /// store queues their deliveries in the same commit; another leaves them to the caller.
    pub webhooks: Vec<String>,
}

impl From<MessageRecord> for PendingMessage {
    fn from(record: MessageRecord) -> PendingMessage {
        PendingMessage {
            record,
            dedup_key: None,
            webhooks: Vec::new(),
        }
    }
}

/// What became of one message of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Stored(u64),
    /// The same client id from the same login, in the same room, was stored before as this id.
    Duplicate(u64),
}

impl Appended {
    pub fn id(self) -> u64 {
        match self {
            Appended::Stored(id) | Appended::Duplicate(id) => id,
        }
    }
}

/// What one append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// For each message of the batch, in order.
    pub appended: Vec<Appended>,
    /// Each room the batch stored messages in, as the commit left it.
    pub heads: Vec<RoomHead>,
}

/// A room's state as of its newest message: what a commit writes into the room's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomHead {
    pub slug: Slug,
    pub last_id: i64,
    pub counted: i64,
    pub last_activity: i64,
    pub mentions: Vec<MentionMark>,
}

impl From<&RoomRecord> for RoomHead {
    fn from(room: &RoomRecord) -> RoomHead {
        RoomHead {
            slug: room.slug.clone(),
            last_id: room.last_id,
            counted: room.counted,
            last_activity: room.last_activity,
            mentions: room.mentions.clone(),
        }
    }
}

/// What a store writes for one batch, in one commit.
pub(super) struct Assignment {
    pub outcome: AppendOutcome,
    /// The messages to insert, with their ids.
    pub messages: Vec<MessageRecord>,
    pub dedup: Vec<DedupRecord>,
}

/// Gives each message of `batch` the next id of its room, unless its resend key is `known`
/// (stored before, with that id) or came earlier in the batch. `heads` are the touched
/// rooms as stored before the batch; a room that is not there fails the whole batch.
pub(super) fn assign(
    batch: &[PendingMessage],
    heads: impl IntoIterator<Item = RoomHead>,
    mut known: HashMap<String, u64>,
) -> StoreResult<Assignment> {
    let mut heads: HashMap<Slug, RoomHead> = heads
        .into_iter()
        .map(|head| (head.slug.clone(), head))
        .collect();
    let mut touched: Vec<Slug> = Vec::new();
    let mut assignment = Assignment {
        outcome: AppendOutcome {
            appended: Vec::with_capacity(batch.len()),
            heads: Vec::new(),
        },
        messages: Vec::with_capacity(batch.len()),
        dedup: Vec::new(),
    };
    for pending in batch {
        let key = pending.dedup_key.as_ref();
        if let Some(&id) = key.and_then(|key| known.get(key)) {
            assignment.outcome.appended.push(Appended::Duplicate(id));
            continue;
        }
        let room = &pending.record.room;
        let head = heads
            .get_mut(room)
            .ok_or_else(|| StoreError::Database(format!("no room {room} to append to")))?;
        head.last_id += 1;
        if pending.record.kind.counts() {
            head.counted += 1;
        }
        head.last_activity = pending.record.created_at;
        let id = head.last_id as u64;
        let mut record = pending.record.clone();
        record.id = head.last_id;
        record.key = MessageRecord::key_for(room, id);
        mark_mentions(&mut head.mentions, &record);
        if let Some(key) = key {
            known.insert(key.clone(), id);
            assignment.dedup.push(DedupRecord {
                key: key.clone(),
                room: room.clone(),
                id: head.last_id,
            });
        }
        if !touched.contains(room) {
            touched.push(room.clone());
        }
        assignment.messages.push(record);
        assignment.outcome.appended.push(Appended::Stored(id));
    }
    assignment.outcome.heads = touched
        .iter()
        .filter_map(|slug| heads.remove(slug))
        .collect();
    Ok(assignment)
}

/// Records that `record` is the newest message to mention each login it mentions.
fn mark_mentions(marks: &mut Vec<MentionMark>, record: &MessageRecord) {
    for login in &record.mentioned {
        marks.retain(|mark| mark.key != *login);
        marks.push(MentionMark {
            key: login.clone(),
            id: record.id,
        });
    }
    let excess = marks.len().saturating_sub(MENTION_MARKS);
    marks.drain(..excess);
}

/// The distinct rooms of a batch, in slug order: the order PostgreSQL locks them in, so two
/// batches never wait for each other's rooms in a circle.
pub(super) fn rooms_of(batch: &[PendingMessage]) -> Vec<&str> {
    let mut rooms: Vec<&str> = batch.iter().map(|m| m.record.room.as_str()).collect();
    rooms.sort_unstable();
    rooms.dedup();
    rooms
}

/// The distinct resend keys of a batch.
pub(super) fn dedup_keys_of(batch: &[PendingMessage]) -> Vec<&str> {
    let mut keys: Vec<&str> = batch
        .iter()
        .filter_map(|m| m.dedup_key.as_deref())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}
