//! Reading a room's messages: the newest page, older pages, catch-up after a reconnect.

use std::sync::Arc;

use super::room::{newest_page, render};
use super::{CatchUp, Hub, Missed, PAGE, RESET_THRESHOLD, Room};
use crate::domain::Nickname;
use crate::store::{self, MessageRecord, StoreResult};
use crate::views::RenderedMessage;

impl Hub {
    /// The room with its window of newest messages loaded, for what is read from it.
    pub async fn loaded<'a>(&self, room: &'a Room) -> StoreResult<&'a Room> {
        room.ensure_loaded(&self.storage).await?;
        Ok(room)
    }

    /// The newest `PAGE` messages of a room, oldest first.
    pub async fn newest_page(&self, room: &Room) -> StoreResult<Vec<Arc<RenderedMessage>>> {
        Ok(self.loaded(room).await?.with_window(newest_page))
    }

    /// Up to `PAGE` messages older than `before`, oldest first.
    pub async fn page_before(
        &self,
        room: &Room,
        before: u64,
    ) -> StoreResult<Vec<Arc<RenderedMessage>>> {
        let to = before.min(room.last_id() + 1).saturating_sub(1);
        if to == 0 {
            return Ok(Vec::new());
        }
        let from = to.saturating_sub(PAGE - 1).max(1);
        room.ensure_loaded(&self.storage).await?;
        let from_window = room.with_window(|w| {
            let first = w.front().map(|m| m.id)?;
            (first <= from).then(|| {
                w.iter()
                    .filter(|m| m.id >= from && m.id <= to)
                    .cloned()
                    .collect()
            })
        });
        if let Some(page) = from_window {
            return Ok(page);
        }
        let slug = room.slug.clone();
        let records = store::blocking(&self.storage, move |s| s.messages(&slug, from, to)).await?;
        Ok(records.iter().map(|r| Arc::new(render(r))).collect())
    }

    /// What a client whose newest message is `after` has missed.
    pub async fn catch_up(
        &self,
        room: &Room,
        after: u64,
        revision: Option<u64>,
    ) -> StoreResult<Missed> {
        room.ensure_loaded(&self.storage).await?;
        // Read before the window: a change made meanwhile is sent again, never skipped.
        let now = room.revision();
        Ok(room.with_window(|w| {
            let newest = w.back().map_or(0, |m| m.id);
            let oldest = w.front().map_or(1, |m| m.id);
            let missed = newest.saturating_sub(after);
            let catch_up = if missed > RESET_THRESHOLD || after.saturating_add(1) < oldest {
                CatchUp::Reset(w.iter().rev().take(PAGE as usize).rev().cloned().collect())
            } else {
                CatchUp::Replay(w.iter().filter(|m| m.id > after).cloned().collect())
            };
            let changed = match (&catch_up, revision) {
                (CatchUp::Replay(_), Some(seen)) => w
                    .iter()
                    .filter(|m| m.id <= after && m.revision > seen)
                    .cloned()
                    .collect(),
                _ => Vec::new(),
            };
            Missed {
                catch_up,
                changed,
                revision: now,
            }
        }))
    }

    /// Message `id` as stored, for editing it.
    pub async fn message_record(&self, room: &Room, id: u64) -> StoreResult<Option<MessageRecord>> {
        let slug = room.slug.clone();
        Ok(
            store::blocking(&self.storage, move |s| s.messages(&slug, id, id))
                .await?
                .pop(),
        )
    }

    /// Message `id` as rendered now: from the window, or from the database.
    pub async fn message(&self, room: &Room, id: u64) -> StoreResult<Option<Arc<RenderedMessage>>> {
        room.ensure_loaded(&self.storage).await?;
        if let Some(recent) = self.recent_message(room, id) {
            return Ok(Some(recent));
        }
        Ok(self
            .message_record(room, id)
            .await?
            .map(|record| Arc::new(render(&record))))
    }

    /// People to offer when `viewer` types `@prefix`: recent authors, newest first, then
    /// those here now, whose mention key starts with `prefix` (already a mention key).
    pub async fn mention_candidates(
        &self,
        room: &Room,
        viewer: &str,
        prefix: &str,
    ) -> StoreResult<Vec<String>> {
        const SHOWN: usize = 8;
        room.ensure_loaded(&self.storage).await?;
        let mut names: Vec<String> =
            room.with_window(|w| w.iter().rev().map(|m| m.author.clone()).collect());
        names.extend(room.here());
        let mut seen = std::collections::HashSet::new();
        Ok(names
            .into_iter()
            .filter(|name| !name.is_empty() && name != viewer)
            .filter_map(|name| Nickname::parse(&name).ok())
            .filter(|name| name.mention_key().starts_with(prefix))
            .filter(|name| seen.insert(name.mention_key()))
            .map(|name| name.as_str().to_owned())
            .take(SHOWN)
            .collect())
    }

    /// A message from the window, for acknowledging a resend.
    pub fn recent_message(&self, room: &Room, id: u64) -> Option<Arc<RenderedMessage>> {
        room.with_window(|w| w.iter().rev().find(|m| m.id == id).cloned())
    }
}
