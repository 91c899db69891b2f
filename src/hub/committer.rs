//! The committer thread: this instance's only writer of messages. It takes whatever
//! requests are queued, stores new messages in one synced commit (the store gives their ids,
//! so instances sharing a database never hand out the same one), then publishes them in id
//! order. Edits, deletions and reactions pass through the same queue, so a change can never
//! overtake the message it changes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::room::{Room, render, render_with_body};
use super::{Appended, BotsHook, ChangeError, MAX_BATCH, MessageChange};
use crate::clock::now_millis;
use crate::domain::{Nickname, Slug, render_body_and_mentions};
use crate::identity::login_handle;
use crate::metrics::Metrics;
use crate::store::{
    Attachment, MessageKind, MessageRecord, PendingMessage, Reaction, ReplyPreview, RoomHead,
    Storage, StoreError, StoreResult,
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
    bots_hook: &OnceLock<Arc<dyn BotsHook>>,
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
        if commit_batch(storage, &mut dedup, batch, bots_hook.get(), metrics) {
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

/// Applies the request to its message as stored, in one step of the store's.
fn change_message(
    storage: &dyn Storage,
    request: &ChangeRequest,
) -> Result<MessageRecord, ChangeError> {
    let mut outcome = Err(ChangeError::NotFound);
    storage.change_message(&request.room.slug, request.id, &mut |stored| {
        outcome = stored
            .ok_or(ChangeError::NotFound)
            .and_then(|record| changed(storage, request, record));
        match &outcome {
            Ok((record, true)) => Some(record.clone()),
            _ => None,
        }
    })?;
    outcome.map(|(record, _)| record)
}

/// The message as the request changes it, and whether that changed anything.
fn changed(
    storage: &dyn Storage,
    request: &ChangeRequest,
    mut record: MessageRecord,
) -> Result<(MessageRecord, bool), ChangeError> {
    if record.kind != MessageKind::User || record.deleted {
        return Err(ChangeError::NotFound);
    }
    // The same login, not the same name: a later holder of the nickname is someone else.
    let own = !record.login.is_empty() && record.login == request.login;
    match &request.change {
        MessageChange::Edit(body) => {
            if !own {
                return Err(ChangeError::Forbidden);
            }
            if record.body == *body {
                return Ok((record, false));
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
    Ok((record, true))
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

/// Shows the room's messages that are stored but that it has not shown: a resend found its
/// message stored by a commit whose answer was lost (the connection dropped during COMMIT).
/// Returns whether it showed them.
fn show_unseen_commit(storage: &dyn Storage, room: &Room, metrics: &Metrics) -> bool {
    let shown = storage.room(&room.slug).and_then(|record| match record {
        Some(record) => room.publish_stored(storage, Vec::new(), &RoomHead::from(&record), metrics),
        None => Ok(()),
    });
    if let Err(e) = &shown {
        // The listener's sweep shows them.
        tracing::warn!(error = %e, room = %room.slug, "messages not shown yet");
    }
    shown.is_ok()
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

/// Stores a batch of new messages in one commit, publishes them in id order, and answers
/// each request. Returns whether it showed any message the room had not shown (stored now,
/// or found stored by a resend whose commit answer was lost).
fn commit_batch(
    storage: &dyn Storage,
    dedup: &mut DedupCache,
    requests: Vec<AppendRequest>,
    bots_hook: Option<&Arc<dyn BotsHook>>,
    metrics: &Metrics,
) -> bool {
    let now = now_millis();
    // Requests come in queue order: the first waited longest.
    let oldest = requests.first().map(|r| r.queued_at);
    let mut batch = Vec::with_capacity(requests.len());
    // Each body rendered once, before the commit: its mentions are stored with it.
    let mut bodies = Vec::with_capacity(requests.len());
    let mut accepted = Vec::with_capacity(requests.len());

    for request in requests {
        // Every post passes here, whatever route it came by: none goes into an archived room.
        if request.kind == MessageKind::User && request.room.is_archived() {
            let _ = request.reply.send(Err(StoreError::Archived));
            continue;
        }
        if let Some(id) = request.dedup_key.as_deref().and_then(|key| dedup.get(key)) {
            let _ = request.reply.send(Ok(Appended::Duplicate(id)));
            continue;
        }
        let body = render_body_and_mentions(&request.body);
        let mentioned = if request.kind == MessageKind::User && !body.mentions.is_empty() {
            mentioned_logins(storage, &body.mentions, &request.login, now)
        } else {
            Vec::new()
        };
        let record = MessageRecord {
            client_id: request.client_id.clone(),
            bot: request.bot,
            reply_to: request
                .reply_to
                .and_then(|answered| reply_preview(storage, &request.room.slug, answered)),
            attachment: request.attachment.clone(),
            mentioned,
            // The id is the store's to give.
            ..MessageRecord::new(
                &request.room.slug,
                0,
                request.kind,
                request.author.clone(),
                request.login.clone(),
                request.body.clone(),
                now,
            )
        };
        let webhooks = match bots_hook {
            Some(hook) if !body.mentions.is_empty() => {
                hook.webhooks_for(&request.room, &record, &body.mentions)
            }
            _ => Vec::new(),
        };
        batch.push(PendingMessage {
            record,
            dedup_key: request.dedup_key.clone(),
            webhooks,
        });
        bodies.push(body);
        accepted.push(request);
    }
    if accepted.is_empty() {
        return false;
    }

    let committing = Instant::now();
    let outcome = match storage.append(&batch) {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::error!(error = %e, messages = accepted.len(), "commit failed");
            for request in accepted {
                let _ = request.reply.send(Err(e.clone()));
            }
            return false;
        }
    };
    let stored = outcome
        .appended
        .iter()
        .filter(|appended| matches!(appended, Appended::Stored(_)))
        .count();
    metrics.commit_seconds.record(committing.elapsed());
    metrics.commit_batch.record(stored as f64);
    metrics.persisted.increment(stored as u64);

    let mut by_room: HashMap<&Slug, (&Arc<Room>, Vec<Arc<RenderedMessage>>)> = HashMap::new();
    for (((request, pending), body), appended) in accepted
        .iter()
        .zip(batch)
        .zip(bodies)
        .zip(&outcome.appended)
    {
        let Appended::Stored(id) = *appended else {
            continue;
        };
        let mut record = pending.record;
        record.id = id as i64;
        record.key = MessageRecord::key_for(&record.room, id);
        if let Some(hook) = bots_hook
            && !pending.webhooks.is_empty()
        {
            hook.mentioned(&record, &pending.webhooks);
        }
        let message = render_with_body(&record, body);
        by_room
            .entry(&request.room.slug)
            .or_insert_with(|| (&request.room, Vec::new()))
            .1
            .push(Arc::new(message));
    }
    // One frame per room per commit.
    for head in &outcome.heads {
        let Some((room, messages)) = by_room.remove(&head.slug) else {
            continue;
        };
        if let Err(e) = room.publish_stored(storage, messages, head, metrics) {
            // Stored all the same; the room's announcement brings them out.
            tracing::warn!(error = %e, room = %head.slug, "messages not shown yet");
        }
    }
    let mut shown = stored > 0;
    for (request, appended) in accepted.iter().zip(&outcome.appended) {
        if let Appended::Duplicate(id) = *appended
            && id > request.room.last_id()
        {
            shown |= show_unseen_commit(storage, &request.room, metrics);
        }
    }
    for (request, appended) in accepted.into_iter().zip(outcome.appended) {
        if let Some(key) = request.dedup_key {
            dedup.insert(key, appended.id());
        }
        let _ = request.reply.send(Ok(appended));
    }
    if let Some(oldest) = oldest {
        metrics.fanout_seconds.record(oldest.elapsed());
    }
    shown
}
