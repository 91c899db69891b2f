//! The committer thread: the only writer of messages. It takes whatever requests are
//! queued, stores new messages in one synced commit, then publishes them in id order. Edits,
//! deletions and reactions pass through the same queue, so a change can never overtake the
//! message it changes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::room::{Room, render};
use super::{Appended, ChangeError, MAX_BATCH, MentionHook, MessageChange};
use crate::clock::now_millis;
use crate::domain::{Nickname, Slug, render_body_and_mentions};
use crate::identity::login_handle;
use crate::metrics::Metrics;
use crate::store::{
    AppendBatch, Attachment, DedupRecord, MentionMark, MessageKind, MessageRecord, Reaction,
    ReplyPreview, RoomHead, Storage, StoreError, StoreResult,
};
use crate::views::RenderedMessage;

/// How much of the answered message a reply quotes.
const REPLY_EXCERPT_CHARS: usize = 120;

/// Work for the committer, in the order it was queued.
pub(super) enum CommitRequest {
    Append(AppendRequest),
    Change(ChangeRequest),
}

/// Recently seen `(login, client_id)` keys kept in memory, so most resends skip the database.
const DEDUP_CACHE: usize = 16_384;

/// A request to persist one message, answered once it is committed (or refused).
pub(super) struct AppendRequest {
    pub room: Arc<Room>,
    pub kind: MessageKind,
    pub author: String,
    /// The author's login handle; empty for a system line.
    pub login: String,
    pub body: String,
    pub client_id: Option<String>,
    pub dedup_key: Option<String>,
    /// The id of the message this one answers, in the same room.
    pub reply_to: Option<u64>,
    /// Posted by a bot through the API.
    pub bot: bool,
    pub attachment: Option<Attachment>,
    pub reply: oneshot::Sender<StoreResult<Appended>>,
    /// When it was submitted, for the fan-out latency.
    pub queued_at: Instant,
}

/// A request to change a stored message on behalf of `by`, from the login `login`.
pub(super) struct ChangeRequest {
    pub room: Arc<Room>,
    pub id: u64,
    pub by: String,
    pub login: String,
    pub change: MessageChange,
    pub reply: oneshot::Sender<Result<Arc<RenderedMessage>, ChangeError>>,
}

/// Bounded memory of recent dedup keys, oldest forgotten first.
struct DedupCache {
    ids: HashMap<String, u64>,
    order: VecDeque<String>,
}

impl DedupCache {
    fn get(&self, key: &str) -> Option<u64> {
        self.ids.get(key).copied()
    }

    fn insert(&mut self, key: String, id: u64) {
        if self.order.len() >= DEDUP_CACHE
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        self.order.push_back(key.clone());
        self.ids.insert(key, id);
    }
}

/// The committer: takes whatever requests are queued (up to `MAX_BATCH`), stores them in one
/// synced commit, then publishes them in id order. Exits when every sender is gone, after
/// draining the queue: that is the shutdown flush.
pub(super) fn run_committer(
    storage: &dyn Storage,
    mut requests: mpsc::Receiver<CommitRequest>,
    sidebar_dirty: &AtomicBool,
    mention_hook: &OnceLock<Arc<dyn MentionHook>>,
    metrics: &Metrics,
) {
    let mut dedup = DedupCache {
        ids: HashMap::new(),
        order: VecDeque::new(),
    };
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(request) => request,
            None => match requests.blocking_recv() {
                Some(request) => request,
                None => return,
            },
        };
        let first = match first {
            CommitRequest::Change(change) => {
                apply_change(storage, change);
                continue;
            }
            CommitRequest::Append(append) => append,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(CommitRequest::Append(request)) => batch.push(request),
                // Committed after this batch, in queue order.
                Ok(change) => {
                    next = Some(change);
                    break;
                }
                Err(_) => break,
            }
        }
        if commit_batch(storage, &mut dedup, batch, mention_hook.get(), metrics) {
            sidebar_dirty.store(true, Ordering::Release);
        }
    }
}

/// Applies an edit, deletion or reaction, stores it, and replaces the message for everyone.
fn apply_change(storage: &dyn Storage, request: ChangeRequest) {
    let outcome = change_message(storage, &request).map(|record| {
        let changed = request.room.republish(render(&record));
        if !matches!(request.change, MessageChange::React(_)) {
            refresh_replies(storage, &request.room, &record);
        }
        changed
    });
    let _ = request.reply.send(outcome);
}

/// Replies to `original` in the room's window quote it as it is now: the new text after an
/// edit, and after a deletion only that it was deleted. (Older replies keep the quote they
/// were sent with.) Only the replies themselves are read.
fn refresh_replies(storage: &dyn Storage, room: &Room, original: &MessageRecord) {
    let id = original.id.max(0) as u64;
    let reply_ids: Vec<u64> = room.with_window(|window| {
        window
            .iter()
            .filter(|m| m.reply_to == Some(id))
            .map(|m| m.id)
            .collect()
    });
    if reply_ids.is_empty() {
        return;
    }
    let mut replies = Vec::with_capacity(reply_ids.len());
    for reply_id in reply_ids {
        match storage.messages(&room.slug, reply_id, reply_id) {
            Ok(found) => replies.extend(found),
            Err(e) => tracing::warn!(error = %e, room = %room.slug, id, "reply not refreshed"),
        }
    }
    let quote = reply_preview(storage, &room.slug, id).unwrap_or_else(|| ReplyPreview {
        id: original.id,
        author: original.author.clone(),
        excerpt: "Message deleted".to_owned(),
    });
    for mut reply in replies {
        let answers = reply.reply_to.as_ref().is_some_and(|r| r.id == original.id);
        if !answers || reply.deleted || reply.reply_to.as_ref() == Some(&quote) {
            continue;
        }
        reply.reply_to = Some(quote.clone());
        match storage.update_message(&reply) {
            Ok(()) => {
                room.republish(render(&reply));
            }
            Err(e) => tracing::warn!(error = %e, room = %room.slug, id, "reply not refreshed"),
        }
    }
}

fn change_message(
    storage: &dyn Storage,
    request: &ChangeRequest,
) -> Result<MessageRecord, ChangeError> {
    let mut record = storage
        .messages(&request.room.slug, request.id, request.id)?
        .pop()
        .filter(|m| m.kind == MessageKind::User && !m.deleted)
        .ok_or(ChangeError::NotFound)?;
    // The same login, not the same name: a later holder of the nickname is someone else.
    let own = !record.login.is_empty() && record.login == request.login;
    match &request.change {
        MessageChange::Edit(body) => {
            if !own {
                return Err(ChangeError::Forbidden);
            }
            if record.body == *body {
                return Ok(record);
            }
            record.body = body.clone();
            record.edited_at = Some(now_millis());
            let named = render_body_and_mentions(body).mentions;
            record.mentioned = mentioned_logins(storage, &named, &record.login, now_millis());
        }
        MessageChange::Delete | MessageChange::DeleteAsAdmin => {
            if !own && request.change == MessageChange::Delete {
                return Err(ChangeError::Forbidden);
            }
            record.deleted = true;
            record.body.clear();
            record.reactions.clear();
            record.reply_to = None;
            // Its file is no longer served from this message (others may share the bytes).
            record.attachment = None;
        }
        MessageChange::React(emoji) => toggle_reaction(&mut record.reactions, emoji, &request.by),
    }
    storage.update_message(&record)?;
    Ok(record)
}

fn toggle_reaction(reactions: &mut Vec<Reaction>, emoji: &str, by: &str) {
    match reactions.iter_mut().position(|r| r.emoji == emoji) {
        Some(at) => {
            let people = &mut reactions[at].by;
            match people.iter().position(|p| p == by) {
                Some(mine) => {
                    people.remove(mine);
                }
                None => people.push(by.to_owned()),
            }
            if people.is_empty() {
                reactions.remove(at);
            }
        }
        None => reactions.push(Reaction {
            emoji: emoji.to_owned(),
            by: vec![by.to_owned()],
        }),
    }
}

/// Mention marks a room keeps; the oldest are forgotten first.
const MENTION_MARKS: usize = 64;

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

/// The logins holding the nicknames with these mention keys now, but the author's own: a
/// later holder of a name is not mentioned by what was written before.
fn mentioned_logins(
    storage: &dyn Storage,
    mention_keys: &[String],
    author: &str,
    now: i64,
) -> Vec<String> {
    let mut logins: Vec<String> = mention_keys
        .iter()
        .filter_map(|key| mentioned_login(storage, key, now))
        .filter(|login| login != author)
        .collect();
    logins.dedup();
    logins
}

/// The handle of the login holding the nickname with this mention key, if anyone does.
fn mentioned_login(storage: &dyn Storage, mention_key: &str, now: i64) -> Option<String> {
    let nickname = Nickname::parse(mention_key).ok()?;
    match storage.holder(&nickname.key(), now) {
        Ok(claim) => claim.map(|claim| login_handle(&claim.login_id)),
        Err(e) => {
            tracing::warn!(error = %e, "mention not marked");
            None
        }
    }
}

/// What a reply quotes of message `id`, if it exists and is not deleted.
fn reply_preview(storage: &dyn Storage, room: &Slug, id: u64) -> Option<ReplyPreview> {
    let answered = storage.messages(room, id, id).ok()?.pop()?;
    if answered.deleted || answered.kind != MessageKind::User {
        return None;
    }
    let quoted = match &answered.attachment {
        Some(file) if answered.body.is_empty() => format!("📎 {}", file.name),
        _ => answered.body,
    };
    let mut excerpt: String = quoted.chars().take(REPLY_EXCERPT_CHARS).collect();
    if excerpt.len() < quoted.len() {
        excerpt.push('…');
    }
    Some(ReplyPreview {
        id: answered.id,
        author: answered.author,
        excerpt,
    })
}

/// Returns whether anything was published.
fn commit_batch(
    storage: &dyn Storage,
    dedup: &mut DedupCache,
    requests: Vec<AppendRequest>,
    mention_hook: Option<&Arc<dyn MentionHook>>,
    metrics: &Metrics,
) -> bool {
    let now = now_millis();
    // Requests come in queue order: the first waited longest.
    let oldest = requests.first().map(|r| r.queued_at);
    // Per room: the room, and its last id and count of counted messages so far in the batch.
    let mut next_ids: HashMap<Slug, (Arc<Room>, u64, u64)> = HashMap::new();
    let mut batch = AppendBatch::default();
    let mut accepted = Vec::with_capacity(requests.len());
    let mut keys_in_batch: HashMap<String, u64> = HashMap::new();

    for request in requests {
        // Every post passes here, whatever route it came by: none goes into an archived room.
        if request.kind == MessageKind::User && request.room.is_archived() {
            let _ = request.reply.send(Err(StoreError::Archived));
            continue;
        }
        if let Some(key) = &request.dedup_key {
            let known = match keys_in_batch.get(key).copied().or_else(|| dedup.get(key)) {
                Some(id) => Ok(Some(id)),
                None => storage
                    .dedup_lookup(key)
                    .map(|found| found.map(|r| r.id as u64)),
            };
            match known {
                Ok(Some(id)) => {
                    let _ = request.reply.send(Ok(Appended::Duplicate(id)));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = request.reply.send(Err(e));
                    continue;
                }
            }
        }
        let slot = next_ids
            .entry(request.room.slug.clone())
            .or_insert_with(|| {
                let room = &request.room;
                (room.clone(), room.last_id(), room.counted())
            });
        slot.1 += 1;
        if request.kind.counts() {
            slot.2 += 1;
        }
        let id = slot.1;
        let record = MessageRecord {
            client_id: request.client_id.clone(),
            bot: request.bot,
            reply_to: request
                .reply_to
                .and_then(|answered| reply_preview(storage, &request.room.slug, answered)),
            attachment: request.attachment.clone(),
            ..MessageRecord::new(
                &request.room.slug,
                id,
                request.kind,
                request.author.clone(),
                request.login.clone(),
                request.body.clone(),
                now,
            )
        };
        if let Some(key) = &request.dedup_key {
            keys_in_batch.insert(key.clone(), id);
            batch.dedup.push(DedupRecord {
                key: key.clone(),
                room: request.room.slug.clone(),
                id: id as i64,
            });
        }
        batch.messages.push(record);
        accepted.push(request);
    }
    if accepted.is_empty() {
        return false;
    }
    // Rendered before the commit, so the mentions can be stored in it; shown only after. A
    // message that names people is rendered again with their logins, which it then stores.
    let mut rendered: Vec<RenderedMessage> = batch.messages.iter().map(render).collect();
    let mut marks: HashMap<Slug, Vec<MentionMark>> = HashMap::new();
    for (record, message) in batch.messages.iter_mut().zip(rendered.iter_mut()) {
        if message.mentions.is_empty() || record.kind != MessageKind::User {
            continue;
        }
        record.mentioned = mentioned_logins(storage, &message.mentions, &record.login, now);
        if record.mentioned.is_empty() {
            continue;
        }
        *message = render(record);
        let (room, _, _) = &next_ids[&record.room];
        let room_marks = marks
            .entry(room.slug.clone())
            .or_insert_with(|| room.mention_marks());
        mark_mentions(room_marks, record);
    }
    batch.room_heads = next_ids
        .iter()
        .map(|(slug, (room, last, counted))| RoomHead {
            slug: slug.clone(),
            last_id: *last as i64,
            counted: *counted as i64,
            last_activity: now,
            mentions: marks
                .get(slug)
                .cloned()
                .unwrap_or_else(|| room.mention_marks()),
        })
        .collect();

    let committing = Instant::now();
    match storage.append(&batch) {
        Ok(()) => {
            let stored = batch.messages.len();
            metrics.commit_seconds.record(committing.elapsed());
            metrics.commit_batch.record(stored as f64);
            metrics.persisted.increment(stored as u64);
            for (slug, room_marks) in marks {
                next_ids[&slug].0.set_mention_marks(room_marks);
            }
            if let Some(hook) = mention_hook {
                for (record, message) in batch.messages.iter().zip(&rendered) {
                    if !message.mentions.is_empty() {
                        hook.mentioned(&next_ids[&record.room].0, record, &message.mentions);
                    }
                }
            }
            // Counted before anyone is shown them: whoever saw a message sees it counted.
            let delivered: usize = accepted.iter().map(|r| r.room.subscribers()).sum();
            metrics.delivered.increment(delivered as u64);
            // One frame per room per commit; ids are contiguous per room within a batch.
            let ids: Vec<u64> = rendered.iter().map(|m| m.id).collect();
            let mut by_room: HashMap<&Slug, Vec<Arc<RenderedMessage>>> = HashMap::new();
            for (record, message) in batch.messages.iter().zip(rendered) {
                by_room
                    .entry(&record.room)
                    .or_default()
                    .push(Arc::new(message));
            }
            for (slug, messages) in by_room {
                let (room, _, counted) = &next_ids[slug];
                room.publish(messages, now, *counted);
            }
            for (request, id) in accepted.into_iter().zip(ids) {
                if let Some(key) = request.dedup_key {
                    dedup.insert(key, id);
                }
                let _ = request.reply.send(Ok(Appended::Stored(id)));
            }
            if let Some(oldest) = oldest {
                metrics.fanout_seconds.record(oldest.elapsed());
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, messages = accepted.len(), "commit failed");
            for request in accepted {
                let _ = request.reply.send(Err(e.clone()));
            }
            false
        }
    }
}
