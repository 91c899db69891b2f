//! A room's history as JSON lines: one message per line, oldest first.

use std::io::Write;

use serde::Serialize;

use super::OpsError;
use crate::clock::from_millis;
use crate::domain::Slug;
use crate::store::{MessageRecord, Storage};
use crate::views::rfc3339;

/// Messages read from the store at a time.
const CHUNK: u64 = 500;

/// One line of an export.
#[derive(Debug, Serialize)]
struct ExportedMessage<'a> {
    id: i64,
    /// `user`, or `system` for lines such as "alice joined" (whose author is who did it).
    kind: &'static str,
    author: &'a str,
    /// RFC 3339, UTC.
    created_at: String,
    /// Empty once deleted.
    body: &'a str,
    edited_at: Option<String>,
    deleted: bool,
}

impl<'a> From<&'a MessageRecord> for ExportedMessage<'a> {
    fn from(record: &'a MessageRecord) -> Self {
        ExportedMessage {
            id: record.id,
            kind: record.kind.as_str(),
            author: &record.author,
            created_at: rfc3339(from_millis(record.created_at)),
            body: &record.body,
            edited_at: record.edited_at.map(|at| rfc3339(from_millis(at))),
            deleted: record.deleted,
        }
    }
}

/// Writes messages 1 to `last_id` of `room`, a chunk at a time; returns how many.
pub fn write_room(
    storage: &dyn Storage,
    room: &Slug,
    last_id: u64,
    out: &mut dyn Write,
) -> Result<u64, OpsError> {
    let mut written = 0;
    let mut from = 1;
    while from <= last_id {
        let to = last_id.min(from + CHUNK - 1);
        for record in storage.messages(room, from, to)? {
            serde_json::to_writer(&mut *out, &ExportedMessage::from(&record))
                .map_err(|e| OpsError::io("writing the export")(e.into()))?;
            out.write_all(b"\n")
                .map_err(OpsError::io("writing the export"))?;
            written += 1;
        }
        from = to + 1;
    }
    Ok(written)
}

/// The room's newest id, from a store no server is running on.
pub fn last_id(storage: &dyn Storage, room: &Slug) -> Result<u64, OpsError> {
    storage
        .rooms()?
        .into_iter()
        .find(|r| r.slug == *room)
        .map(|r| r.last_id.max(0) as u64)
        .ok_or_else(|| OpsError::Invalid(format!("there is no room {room}")))
}
