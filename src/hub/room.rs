//! One room: its recent window of rendered messages, its live channel, and who is present.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{BROADCAST_CAPACITY, PAGE, WINDOW};
use crate::clock::now_millis;
use crate::domain::{RenderedBody, Slug, render_body_and_mentions};
use crate::metrics::Metrics;
use crate::store::{
    self, DirectMember, MentionMark, MessageKind, MessageRecord, RoomHead, RoomRecord, Storage,
    StoreError, StoreResult,
};
use crate::views::{self, History, NewestPage, RenderedMessage, direct_partner};

/// What a room pushes to its subscribers. Each frame is built once and shared.
#[derive(Debug)]
pub enum LiveEvent {
    /// Stored messages `first..=last` (one committer batch of the room), appended in id order
    /// by one frame that every subscriber shares.
    Messages {
        first: u64,
        last: u64,
        frame: Utf8Bytes,
    },
    /// A fragment that replaces an element by id (presence, typing, topic).
    Replace(Utf8Bytes),
    /// A changed message that replaces the old one by id, and the room revision it made.
    Changed { revision: u64, frame: Utf8Bytes },
}

pub struct Room {
    pub slug: Slug,
    /// Admins may rename a room; the slug stays.
    name: RwLock<String>,
    topic: RwLock<String>,
    /// Read-only while set; changed by admins.
    archived: AtomicBool,
    /// A direct conversation's two people, the only ones who may read it; empty otherwise.
    /// Written only to mark one of them a former holder of their name.
    members: RwLock<Vec<DirectMember>>,
    /// Newest id published here (the window holds it, subscribers were sent it); written
    /// only under `publishing`.
    last_id: AtomicU64,
    /// Messages that count as unread (`RoomRecord::counted`), as of `last_id`; written with
    /// it.
    counted: AtomicU64,
    last_activity: AtomicI64,
    /// Written by the committer with each batch that mentions someone here.
    mentions: Mutex<Vec<MentionMark>>,
    window: Mutex<Window>,
    /// Held while messages are published, so what the committer has in hand and what the
    /// listener reads back go out in id order, each once. Taken only on those two threads,
    /// which may read the store while holding it; never by async code.
    publishing: Mutex<()>,
    /// Serialises the first load of the window, so two readers don't both hit the database.
    window_load: tokio::sync::Mutex<()>,
    live: broadcast::Sender<Arc<LiveEvent>>,
    /// Counts message changes; bumped only by the committer, in `republish`. Revisions are
    /// clock-based (Unix milliseconds) so they keep growing across restarts.
    revision: AtomicU64,
    /// The revision at start-up, given to messages loaded from disk that were changed before:
    /// a page from an earlier process has an older revision, and is sent them again.
    first_revision: u64,
    /// Who is here, who is typing; changed on connect, disconnect and typing frames, and
    /// flushed as one fragment per tick by the hub's ticker.
    pub(super) presence: Mutex<Presence>,
}

#[derive(Default)]
pub(super) struct Presence {
    /// Open sockets per nickname: two tabs are one person.
    pub tabs: BTreeMap<String, usize>,
    /// People whose last tab closed, and when; still shown as here until the debounce ends.
    pub leaving: HashMap<String, Instant>,
    /// Who is typing, until when.
    pub typing: BTreeMap<String, Instant>,
    /// Who the other instances sharing the database have here and typing (sorted).
    pub here_elsewhere: Vec<String>,
    pub typing_elsewhere: Vec<String>,
    /// What this instance last shared of its own `here` and `typing`: only a change is
    /// shared again.
    pub shared: (Vec<String>, Vec<String>),
    pub presence_changed: bool,
    pub typing_changed: bool,
}

impl Presence {
    /// Everyone shown as here: open tabs, plus those still inside the leave debounce, on
    /// any instance.
    pub fn here(&self) -> Vec<String> {
        sorted_names(
            self.here_local()
                .into_iter()
                .chain(self.here_elsewhere.iter().cloned()),
        )
    }

    /// Everyone shown as typing, on any instance.
    pub fn typing(&self) -> Vec<String> {
        sorted_names(
            self.typing
                .keys()
                .chain(self.typing_elsewhere.iter())
                .cloned(),
        )
    }

    /// Whom this instance's own sockets make here.
    pub fn here_local(&self) -> Vec<String> {
        sorted_names(self.tabs.keys().chain(self.leaving.keys()).cloned())
    }

    /// People with a tab open, on any instance.
    pub fn present(&self) -> usize {
        let elsewhere = self.here_elsewhere.iter();
        self.tabs.len() + elsewhere.filter(|n| !self.tabs.contains_key(*n)).count()
    }

    /// Takes who the other instances have here and typing; marks what changed.
    pub fn show_elsewhere(&mut self, here: Vec<String>, typing: Vec<String>) {
        if self.here_elsewhere != here {
            self.here_elsewhere = here;
            self.presence_changed = true;
        }
        if self.typing_elsewhere != typing {
            self.typing_elsewhere = typing;
            self.typing_changed = true;
        }
    }
}

fn sorted_names(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = names.collect();
    names.sort_by_key(|n| n.to_lowercase());
    names.dedup();
    names
}

/// The newest messages of a room. Until the first reader loads it from disk, it holds only
/// the messages committed meanwhile (contiguous, since every commit passes here).
#[derive(Default)]
struct Window {
    entries: VecDeque<Arc<RenderedMessage>>,
    loaded: bool,
    /// The newest page's markup, made from `entries` when a page first asks for it and
    /// dropped whenever they change: every viewer without unread messages there is sent the
    /// same bytes.
    newest_markup: Option<NewestPage>,
}

/// The newest `PAGE` of a window's `entries`, oldest first.
pub(super) fn newest_page(entries: &VecDeque<Arc<RenderedMessage>>) -> Vec<Arc<RenderedMessage>> {
    let older = entries.len().saturating_sub(PAGE as usize);
    entries.iter().skip(older).cloned().collect()
}

/// Result of a catch-up request.
pub enum CatchUp {
    /// The messages after the client's newest, in order (possibly none).
    Replay(Vec<Arc<RenderedMessage>>),
    /// Too many missed: replace the whole list with the newest page.
    Reset(Vec<Arc<RenderedMessage>>),
}

/// What a reconnecting client missed.
pub struct Missed {
    pub catch_up: CatchUp,
    /// Older messages it has that changed after its revision, oldest first.
    pub changed: Vec<Arc<RenderedMessage>>,
    /// The room's revision as of this catch-up.
    pub revision: u64,
}

impl Room {
    pub(super) fn from_record(record: RoomRecord, first_revision: u64) -> Room {
        Room {
            slug: record.slug,
            name: RwLock::new(record.name),
            topic: RwLock::new(record.topic),
            archived: AtomicBool::new(record.archived),
            members: RwLock::new(record.members),
            last_id: AtomicU64::new(record.last_id.max(0) as u64),
            counted: AtomicU64::new(record.counted.max(0) as u64),
            last_activity: AtomicI64::new(record.last_activity),
            mentions: Mutex::new(record.mentions),
            window: Mutex::new(Window::default()),
            publishing: Mutex::new(()),
            window_load: tokio::sync::Mutex::new(()),
            live: broadcast::channel(BROADCAST_CAPACITY).0,
            presence: Mutex::new(Presence::default()),
            revision: AtomicU64::new(first_revision),
            first_revision,
        }
    }

    /// The revision of the room's newest message change: pages carry it, and send it back on
    /// reconnecting to be sent the changes they missed.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Whether the login with this handle may see the room: everyone, unless it is a direct
    /// conversation, which only its two people's logins may.
    pub fn readable_by(&self, login: &str) -> bool {
        self.slug.direct_members().is_none()
            || self
                .members
                .read()
                .expect("members lock")
                .iter()
                .any(|m| m.login == login)
    }

    /// A direct conversation's two people; empty for a named room.
    pub fn members(&self) -> Vec<DirectMember> {
        self.members.read().expect("members lock").clone()
    }

    pub(super) fn set_members(&self, members: Vec<DirectMember>) {
        *self.members.write().expect("members lock") = members;
    }

    /// In a direct conversation, the other person's name as it shows to the login `viewer`.
    pub fn partner_of(&self, viewer: &str) -> Option<String> {
        direct_partner(&self.members.read().expect("members lock"), viewer)
    }

    pub fn name(&self) -> String {
        self.name.read().expect("name lock").clone()
    }

    /// A new name, shown in the room's header at once (the sidebar follows with its tick).
    pub(super) fn show_name(&self, name: String) {
        self.replace(views::room_title_fragment(&name));
        *self.name.write().expect("name lock") = name;
    }

    pub fn is_archived(&self) -> bool {
        self.archived.load(Ordering::Acquire)
    }

    /// Archived (read-only) or reopened, shown in the room at once.
    pub(super) fn show_archived(&self, archived: bool) {
        self.archived.store(archived, Ordering::Release);
        self.replace(views::room_state_fragment(archived));
    }

    pub fn topic(&self) -> String {
        self.topic.read().expect("topic lock").clone()
    }

    /// A new topic, shown in the room at once.
    pub(super) fn show_topic(&self, topic: String) {
        self.replace(views::topic_fragment(&topic));
        *self.topic.write().expect("topic lock") = topic;
    }

    /// Sends a replace-by-id fragment to everyone in the room.
    pub(super) fn replace(&self, fragment: String) {
        let _ = self
            .live
            .send(Arc::new(LiveEvent::Replace(Utf8Bytes::from(fragment))));
    }

    /// Names present now, for the page and the presence fragment.
    pub fn here(&self) -> Vec<String> {
        self.presence.lock().expect("presence lock").here()
    }

    pub fn last_id(&self) -> u64 {
        self.last_id.load(Ordering::Acquire)
    }

    /// How many messages so far count as unread: people's and bots'.
    pub fn counted(&self) -> u64 {
        self.counted.load(Ordering::Acquire)
    }

    /// The count as of message `id`, for a read mark. Worked out from the window: a mark
    /// older than the window counts every message after it, so it may show more unread
    /// than there is, never fewer.
    pub fn counted_at(&self, id: u64) -> u64 {
        let (last, counted) = (self.last_id(), self.counted());
        if id >= last {
            return counted;
        }
        let newer = self.with_window(|entries| {
            let in_window = entries.iter().filter(|m| m.id > id && m.counts()).count() as u64;
            let first_in_window = entries.front().map_or(last + 1, |m| m.id);
            in_window + first_in_window.saturating_sub(id + 1)
        });
        counted.saturating_sub(newer)
    }

    /// Unix milliseconds of the newest message or of creation.
    pub fn last_activity(&self) -> i64 {
        self.last_activity.load(Ordering::Acquire)
    }

    /// The newest message mentioning each recently mentioned person.
    pub fn mention_marks(&self) -> Vec<MentionMark> {
        self.mentions.lock().expect("mentions lock").clone()
    }

    fn set_mention_marks(&self, marks: Vec<MentionMark>) {
        *self.mentions.lock().expect("mentions lock") = marks;
    }

    /// Sockets subscribed to the room's live messages.
    pub(super) fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.live.subscribe()
    }

    /// Publishes the room's stored messages up to `head` (its record as of a commit): the
    /// ones `in_hand` (this instance's committer just stored and rendered them, contiguous,
    /// ending at the head), after any before them that are not published here yet (another
    /// instance stored them), read from the store. Ids already published are skipped: every
    /// subscriber gets each message once, in id order, whoever stored it.
    pub(super) fn publish_stored(
        &self,
        storage: &dyn Storage,
        in_hand: Vec<Arc<RenderedMessage>>,
        head: &RoomHead,
        metrics: &Metrics,
    ) -> StoreResult<()> {
        let _turn = self.publishing.lock().expect("publishing lock");
        let published = self.last_id();
        let last = head.last_id.max(0) as u64;
        if last <= published {
            return Ok(());
        }
        let before_in_hand = in_hand.first().map_or(last, |m| m.id.saturating_sub(1));
        let mut messages = Vec::with_capacity(in_hand.len());
        if before_in_hand > published {
            let missing = storage.messages(&self.slug, published + 1, before_in_hand)?;
            if missing.len() as u64 != before_in_hand - published {
                return Err(StoreError::Database(format!(
                    "room {} lacks messages between {published} and {before_in_hand}",
                    self.slug
                )));
            }
            messages.extend(missing.iter().map(|record| Arc::new(render(record))));
        }
        messages.extend(in_hand.into_iter().filter(|m| m.id > published));
        // Counted before anyone is shown them: whoever saw a message sees it counted.
        metrics
            .delivered
            .increment((messages.len() * self.subscribers()) as u64);
        self.publish(messages, head);
        Ok(())
    }

    /// Appends messages (contiguous ids, following what was published, oldest first) as one
    /// frame: a busy room costs each socket a frame per commit, not one per message. `head`
    /// is the room as of the last of them.
    fn publish(&self, messages: Vec<Arc<RenderedMessage>>, head: &RoomHead) {
        let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
            return;
        };
        let (first, last) = (first.id, last.id);
        let frame = Utf8Bytes::from(views::append_fragment(messages.iter().map(Arc::as_ref)));
        {
            let mut window = self.window.lock().expect("window lock");
            window.entries.extend(messages);
            while window.entries.len() > WINDOW {
                window.entries.pop_front();
            }
            // A full window of contiguous messages needs nothing from disk.
            window.loaded |= window.entries.len() >= WINDOW;
            window.newest_markup = None;
        }
        self.set_mention_marks(head.mentions.clone());
        self.counted
            .store(head.counted.max(0) as u64, Ordering::Release);
        self.last_id.store(last, Ordering::Release);
        self.last_activity
            .store(head.last_activity, Ordering::Release);
        // No subscribers is fine: the messages are stored and in the window.
        let _ = self
            .live
            .send(Arc::new(LiveEvent::Messages { first, last, frame }));
    }

    /// A stored message changed (edit, deletion, reaction): the window keeps the new
    /// rendering, and subscribers get it to replace the old one by id.
    pub(super) fn republish(&self, mut message: RenderedMessage) -> Arc<RenderedMessage> {
        let now = now_millis().max(0) as u64;
        let previous = self
            .revision
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                Some(now.max(r + 1))
            })
            .expect("the update always succeeds");
        let revision = now.max(previous + 1);
        message.revision = revision;
        let message = Arc::new(message);
        let frame = Utf8Bytes::from(format!(
            "{}{}",
            message.html,
            views::revision_marker(revision)
        ));
        {
            let mut window = self.window.lock().expect("window lock");
            if let Some(slot) = window.entries.iter_mut().rev().find(|m| m.id == message.id) {
                *slot = message.clone();
                window.newest_markup = None;
            }
        }
        let _ = self
            .live
            .send(Arc::new(LiveEvent::Changed { revision, frame }));
        message
    }

    pub(super) async fn ensure_loaded(&self, storage: &Arc<dyn Storage>) -> StoreResult<()> {
        if self.is_loaded() {
            return Ok(());
        }
        let _loading = self.window_load.lock().await;
        if self.is_loaded() {
            return Ok(());
        }
        let last = self.last_id();
        let from = last.saturating_sub(WINDOW as u64 - 1).max(1);
        let records = if last == 0 {
            Vec::new()
        } else {
            let slug = self.slug.clone();
            store::blocking(storage, move |s| s.messages(&slug, from, last)).await?
        };
        let mut loaded: VecDeque<Arc<RenderedMessage>> = records
            .iter()
            .map(|record| {
                let mut message = render(record);
                if record.edited_at.is_some() || record.deleted || !record.reactions.is_empty() {
                    message.revision = self.first_revision;
                }
                Arc::new(message)
            })
            .collect();
        let mut window = self.window.lock().expect("window lock");
        if !window.loaded {
            loaded.extend(window.entries.drain(..).filter(|m| m.id > last));
            while loaded.len() > WINDOW {
                loaded.pop_front();
            }
            window.entries = loaded;
            window.loaded = true;
            window.newest_markup = None;
        }
        Ok(())
    }

    fn is_loaded(&self) -> bool {
        self.window.lock().expect("window lock").loaded
    }

    /// Reads the loaded window; callers make sure it is loaded first.
    pub(super) fn with_window<T>(
        &self,
        read: impl FnOnce(&VecDeque<Arc<RenderedMessage>>) -> T,
    ) -> T {
        read(&self.window.lock().expect("window lock").entries)
    }

    /// The markup of the newest `PAGE` messages, made once per change of the window (see
    /// [`super::Hub::loaded`]).
    pub fn newest_page_markup(&self) -> Result<NewestPage, askama::Error> {
        let mut window = self.window.lock().expect("window lock");
        if let Some(page) = &window.newest_markup {
            return Ok(page.clone());
        }
        let history = History::new(self.slug.clone(), newest_page(&window.entries), None);
        let page = NewestPage::of(&history)?;
        if window.loaded {
            window.newest_markup = Some(page.clone());
        }
        Ok(page)
    }
}

pub(super) fn render(record: &MessageRecord) -> RenderedMessage {
    render_with_body(record, render_body_and_mentions(&record.body))
}

/// [`render`] with its body rendered already.
pub(super) fn render_with_body(record: &MessageRecord, body: RenderedBody) -> RenderedMessage {
    let (html, mentions) = views::render_message_with(record, body);
    RenderedMessage {
        id: record.id as u64,
        author: match record.kind {
            MessageKind::User => record.author.clone(),
            MessageKind::System => String::new(),
        },
        html,
        mentions,
        revision: 0,
        reply_to: record.reply_to.as_ref().map(|r| r.id.max(0) as u64),
    }
}
