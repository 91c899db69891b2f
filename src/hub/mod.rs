//! Rooms, their live subscribers, and the committer that persists messages before anyone
//! sees them.
//!
//! A message goes: connection → committer thread (group commit into the store) → rendered
//! once → pushed into the room's recent window → the same bytes broadcast to every subscriber.
//! The committer is the only writer of message ids, so ids, window order and broadcast order
//! always agree. Presence, typing and the sidebar are flushed by one ticker, at most once per
//! interval, so a busy room never turns every keystroke or connect into a broadcast storm.

mod committer;
mod room;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::thread;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use time::{OffsetDateTime, UtcOffset};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::domain::{Nickname, RoomName, Slug};
use crate::metrics::Metrics;
use crate::store::{
    self, Attachment, MentionMark, MessageKind, MessageRecord, ReaderRecord, RoomRecord, Storage,
    StoreError, StoreResult,
};
use crate::views;
use committer::{AppendRequest, ChangeRequest, CommitRequest, run_committer};
use room::render;
pub use room::{CatchUp, LiveEvent, Missed, RenderedMessage, Room};

/// How many of a room's newest messages stay rendered in memory. Catch-ups up to this size
/// are served without touching the database; beyond `RESET_THRESHOLD` the client gets a reset.
pub const WINDOW: usize = 600;
/// More missed messages than this and a catch-up becomes a reset to the newest page.
pub const RESET_THRESHOLD: u64 = 500;
/// Messages in a page of history.
pub const PAGE: u64 = 50;
/// Live events a subscriber may fall behind before it refills from the window.
const BROADCAST_CAPACITY: usize = 1024;
/// Requests the committer folds into one commit at most.
const MAX_BATCH: usize = 512;
/// Open sockets one login may hold.
pub const MAX_SOCKETS_PER_LOGIN: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Stored(u64),
    /// The same client id from the same login was stored before as this id.
    Duplicate(u64),
}

/// A message to post.
pub struct NewMessage {
    pub kind: MessageKind,
    pub author: String,
    pub body: String,
    /// `(login_id, client_id)`: a resend with the same pair is stored once.
    pub dedup: Option<(String, String)>,
    /// The message this one answers; ignored unless it exists in the same room.
    pub reply_to: Option<u64>,
    /// A file already stored under `files/`; the body is then an optional caption.
    pub attachment: Option<Attachment>,
}

/// A change to a stored message, on behalf of a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageChange {
    /// New text; only the author may.
    Edit(String),
    /// Leaves "message deleted" in place; only the author may.
    Delete,
    /// The same deletion by an admin, of anyone's message (the caller checked the right).
    DeleteAsAdmin,
    /// Adds or takes back the person's reaction with this emoji.
    React(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("there is no such message")]
    NotFound,
    #[error("only its author can change a message")]
    Forbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl NewMessage {
    /// A line in the stream such as "alice joined"; `actor` is kept as the author.
    pub fn system(actor: &str, body: String) -> NewMessage {
        NewMessage {
            kind: MessageKind::System,
            author: actor.to_owned(),
            body,
            dedup: None,
            reply_to: None,
            attachment: None,
        }
    }
}

/// Told about every stored message that mentions someone (bot webhooks listen here). Called
/// on the committer thread right after the commit, so it must hand work off, never block.
pub trait MentionHook: Send + Sync {
    /// `mentions` are the mention keys of the people (and bots) the message names.
    fn mentioned(&self, room: &Room, message: &MessageRecord, mentions: &[String]);
}

/// Timing of the live extras; flags (defaults in `Config`), so tests can shorten them.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// At most one presence, typing or sidebar fragment per room per interval.
    pub flush_interval: Duration,
    /// A typing indicator disappears this long after the last keystroke.
    pub typing_expiry: Duration,
    /// A person whose last tab closed is announced as left only after this long, so a
    /// reload is not a leave and a join.
    pub leave_debounce: Duration,
    /// "joined"/"left" lines are posted only while at most this many people are present.
    pub announce_limit: usize,
    /// No "joined" lines this long after start: pages reconnecting after a restart aren't
    /// people arriving.
    pub quiet_after_start: Duration,
}

/// A room as the sidebar lists it.
#[derive(Debug, Clone)]
pub struct RoomSummary {
    pub slug: Slug,
    pub name: String,
    /// Listed apart, under "Archived".
    pub archived: bool,
    pub last_id: u64,
    /// Unix milliseconds.
    pub last_activity: i64,
    pub mentions: Vec<MentionMark>,
}

/// A new state of the room list, rendered at most once per viewer time zone and shared.
/// People in a direct conversation also get their own `#dm-list`, rendered once per person
/// and time zone.
pub struct SidebarUpdate {
    rooms: Vec<RoomSummary>,
    now: OffsetDateTime,
    frames: Mutex<HashMap<UtcOffset, Utf8Bytes>>,
    /// Mention keys of everyone in a direct conversation: the rest skip straight to the
    /// shared frame.
    in_direct: HashSet<String>,
    direct_frames: Mutex<HashMap<(String, UtcOffset), Utf8Bytes>>,
}

impl SidebarUpdate {
    fn new(rooms: Vec<RoomSummary>) -> SidebarUpdate {
        let in_direct = rooms
            .iter()
            .filter_map(|room| room.slug.direct_members())
            .flat_map(|(a, b)| [a.to_owned(), b.to_owned()])
            .collect();
        SidebarUpdate {
            rooms,
            now: OffsetDateTime::now_utc(),
            frames: Mutex::new(HashMap::new()),
            in_direct,
            direct_frames: Mutex::new(HashMap::new()),
        }
    }

    /// The frame for a viewer with this mention key, in this time zone.
    pub fn frame_for(&self, offset: UtcOffset, mention_key: &str) -> Utf8Bytes {
        let shared = self.shared_frame(offset);
        if !self.in_direct.contains(mention_key) {
            return shared;
        }
        let mut frames = self.direct_frames.lock().expect("sidebar frames lock");
        frames
            .entry((mention_key.to_owned(), offset))
            .or_insert_with(|| {
                let reader = ReaderRecord::default();
                let mut list = views::Sidebar::new(
                    &self.rooms,
                    self.now.to_offset(offset),
                    Some(views::SidebarViewer {
                        current: None,
                        reader: &reader,
                        mention_key,
                    }),
                );
                // The page applies its own read marks, as on the shared list.
                for room in &mut list.direct {
                    room.read = None;
                }
                Utf8Bytes::from(format!("{shared}{}", list.direct_list()))
            })
            .clone()
    }

    fn shared_frame(&self, offset: UtcOffset) -> Utf8Bytes {
        let mut frames = self.frames.lock().expect("sidebar frames lock");
        frames
            .entry(offset)
            .or_insert_with(|| {
                let list = views::Sidebar::new(&self.rooms, self.now.to_offset(offset), None);
                Utf8Bytes::from(list.render_list())
            })
            .clone()
    }
}

pub struct Hub {
    storage: Arc<dyn Storage>,
    /// Read on every page and upgrade, written only when a room is created.
    rooms: RwLock<HashMap<Slug, Arc<Room>>>,
    committer: mpsc::Sender<CommitRequest>,
    /// Set by the committer when rooms moved; the ticker then sends one sidebar update.
    sidebar_dirty: Arc<AtomicBool>,
    sidebar: broadcast::Sender<Arc<SidebarUpdate>>,
    settings: LiveSettings,
    started: Instant,
    /// Where this process's room revisions start (see `Room::revision`).
    first_revision: u64,
    /// Reader records are read-modify-write; one update at a time keeps marks from being lost.
    readers_lock: tokio::sync::Mutex<()>,
    /// Write-through cache of reader records, read on every page.
    readers: Mutex<HashMap<String, Arc<ReaderRecord>>>,
    /// Open sockets per login: the per-login cap, and the token that ends them on logout.
    logins: Mutex<HashMap<String, LoginSockets>>,
    shutdown: CancellationToken,
    /// Shared with the committer thread; set once while the application is built, before
    /// anything is posted.
    mention_hook: Arc<OnceLock<Arc<dyn MentionHook>>>,
    /// Shared with the committer thread, which records each batch.
    metrics: Arc<Metrics>,
}

struct LoginSockets {
    open: usize,
    ended: CancellationToken,
    /// Why the login ended, for its sockets' close frames; set just before `ended` fires.
    why: Arc<OnceLock<LoginEnd>>,
}

/// Why a login's sockets are closed (all with 1008); the page tells the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginEnd {
    LoggedOut,
    /// An admin kicked the nickname.
    Removed,
}

impl LoginEnd {
    /// The close frame's reason, which the page's script reads.
    pub fn reason(self) -> &'static str {
        match self {
            LoginEnd::LoggedOut => "logged out",
            LoginEnd::Removed => "removed by an admin",
        }
    }
}

/// Handle on the committer thread, to wait for it to flush on shutdown.
pub struct Committer {
    thread: thread::JoinHandle<()>,
}

impl Committer {
    /// Waits until every queued message is committed; call after the hub is dropped.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

impl Hub {
    /// Loads the rooms (creating `lobby` on first start) and starts the committer thread.
    /// Blocking: call from `spawn_blocking`. Start the ticker with [`Hub::spawn_ticker`].
    pub fn start(
        storage: Arc<dyn Storage>,
        settings: LiveSettings,
    ) -> StoreResult<(Arc<Hub>, Committer)> {
        let lobby = RoomRecord::new(Slug::lobby(), "lobby".into(), "", now_millis());
        storage.create_room(&lobby)?;
        let first_revision = now_millis().max(0) as u64;
        let rooms = storage
            .rooms()?
            .into_iter()
            .map(|record| {
                let room = Room::from_record(record, first_revision);
                (room.slug.clone(), Arc::new(room))
            })
            .collect();
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let committer_storage = storage.clone();
        let sidebar_dirty = Arc::new(AtomicBool::new(false));
        let committer_dirty = sidebar_dirty.clone();
        let mention_hook: Arc<OnceLock<Arc<dyn MentionHook>>> = Arc::default();
        let committer_hook = mention_hook.clone();
        let metrics = Metrics::new();
        let committer_metrics = metrics.clone();
        let thread = thread::Builder::new()
            .name("committer".into())
            .spawn(move || {
                run_committer(
                    committer_storage.as_ref(),
                    rx,
                    &committer_dirty,
                    &committer_hook,
                    &committer_metrics,
                )
            })
            .map_err(|e| StoreError::Database(format!("cannot start the committer: {e}")))?;
        let hub = Arc::new(Hub {
            storage,
            rooms: RwLock::new(rooms),
            committer: tx,
            sidebar_dirty,
            sidebar: broadcast::channel(16).0,
            settings,
            started: Instant::now(),
            first_revision,
            readers_lock: tokio::sync::Mutex::new(()),
            readers: Mutex::new(HashMap::new()),
            logins: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            mention_hook,
            metrics,
        });
        Ok((hub, Committer { thread }))
    }

    /// Cancelled when the server shuts down: every socket closes with 1012.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The Prometheus text of every metric, with the room count as of now.
    pub fn render_metrics(&self) -> String {
        let rooms = self.rooms.read().expect("rooms lock").len();
        self.metrics.rooms.set(rooms as f64);
        self.metrics.render()
    }

    pub fn room(&self, slug: &Slug) -> Option<Arc<Room>> {
        self.rooms.read().expect("rooms lock").get(slug).cloned()
    }

    /// The room at this URL segment, if the one with this mention key may read it: to anyone
    /// else a direct conversation does not exist.
    pub fn readable_room(&self, slug: &str, mention_key: &str) -> Option<Arc<Room>> {
        Slug::parse(slug)
            .and_then(|slug| self.room(&slug))
            .filter(|room| room.readable_by(mention_key))
    }

    /// Sets what hears about mentions; only the first call counts.
    pub fn set_mention_hook(&self, hook: Arc<dyn MentionHook>) {
        if self.mention_hook.set(hook).is_err() {
            tracing::warn!("a mention hook was already set");
        }
    }

    /// Whether the person with this mention key may read `room`: search asks it of every
    /// hit. The same rule as every room path ([`Room::readable_by`]).
    pub fn can_read(&self, mention_key: &str, room: &Slug) -> bool {
        self.room(room).is_some_and(|r| r.readable_by(mention_key))
    }

    /// Every room, most recently active first.
    pub fn room_summaries(&self) -> Vec<RoomSummary> {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .read()
            .expect("rooms lock")
            .values()
            .map(|room| RoomSummary {
                slug: room.slug.clone(),
                name: room.name(),
                archived: room.is_archived(),
                last_id: room.last_id(),
                last_activity: room.last_activity(),
                mentions: room.mention_marks(),
            })
            .collect();
        rooms.sort_by(|a, b| {
            b.last_activity
                .cmp(&a.last_activity)
                .then_with(|| a.slug.cmp(&b.slug))
        });
        rooms
    }

    pub fn sidebar_updates(&self) -> broadcast::Receiver<Arc<SidebarUpdate>> {
        self.sidebar.subscribe()
    }

    /// Returns the room with this name's slug, creating it if needed; `true` if created.
    pub async fn open_room(
        &self,
        name: &RoomName,
        creator: &str,
    ) -> StoreResult<(Arc<Room>, bool)> {
        let record = RoomRecord::new(
            name.slug().clone(),
            name.as_str().to_owned(),
            creator,
            now_millis(),
        );
        self.open(record, creator).await
    }

    /// The direct conversation between `me` and `other`, created on first use.
    pub async fn open_direct(
        &self,
        me: &Nickname,
        other: &Nickname,
    ) -> StoreResult<(Arc<Room>, bool)> {
        let slug = Slug::direct(&me.mention_key(), &other.mention_key());
        let record = RoomRecord::new(slug, format!("{me} & {other}"), me.as_str(), now_millis());
        self.open(record, me.as_str()).await
    }

    async fn open(&self, record: RoomRecord, creator: &str) -> StoreResult<(Arc<Room>, bool)> {
        if let Some(room) = self.room(&record.slug) {
            return Ok((room, false));
        }
        let insert = record.clone();
        let created = store::blocking(&self.storage, move |s| s.create_room(&insert)).await?;
        let room = {
            let mut rooms = self.rooms.write().expect("rooms lock");
            rooms
                .entry(record.slug.clone())
                .or_insert_with(|| Arc::new(Room::from_record(record, self.first_revision)))
                .clone()
        };
        if created {
            let _ = self
                .post(
                    &room,
                    NewMessage::system(creator, format!("room created by {creator}")),
                )
                .await;
            self.sidebar_dirty.store(true, Ordering::Release);
        }
        Ok((room, created))
    }

    /// Whether someone holds this nickname now, so a conversation with them can start.
    pub async fn nickname_is_held(&self, nickname: &Nickname) -> StoreResult<bool> {
        let key = nickname.key();
        Ok(store::blocking(&self.storage, move |s| s.claim(&key))
            .await?
            .is_some())
    }

    /// Changes a room's topic, stores it, and tells the room.
    pub async fn set_topic(&self, room: &Arc<Room>, topic: String, by: &str) -> StoreResult<()> {
        let slug = room.slug.clone();
        let stored = topic.clone();
        store::blocking(&self.storage, move |s| s.set_topic(&slug, &stored)).await?;
        room.set_topic(topic.clone());
        room.replace(views::topic_fragment(&topic));
        let line = if topic.is_empty() {
            format!("{by} cleared the topic")
        } else {
            format!("{by} set the topic to “{topic}”")
        };
        self.post(room, NewMessage::system(by, line)).await?;
        Ok(())
    }

    /// An admin renamed the room: stored, then the header and every sidebar follow live.
    pub async fn rename_room(
        &self,
        room: &Arc<Room>,
        name: &RoomName,
        by: &str,
    ) -> StoreResult<()> {
        let slug = room.slug.clone();
        let stored = name.as_str().to_owned();
        store::blocking(&self.storage, move |s| s.rename_room(&slug, &stored)).await?;
        room.set_name(name.as_str().to_owned());
        room.replace(views::room_title_fragment(name.as_str()));
        self.sidebar_dirty.store(true, Ordering::Release);
        let line = format!("{by} renamed the room to “{}”", name.as_str());
        self.post(room, NewMessage::system(by, line)).await?;
        Ok(())
    }

    /// An admin archived (read-only) or reopened the room. The line goes into the stream
    /// first, so it is the last thing an archived room says.
    pub async fn set_archived(
        &self,
        room: &Arc<Room>,
        archived: bool,
        by: &str,
    ) -> StoreResult<()> {
        let slug = room.slug.clone();
        store::blocking(&self.storage, move |s| s.set_archived(&slug, archived)).await?;
        let line = if archived {
            format!("{by} archived the room")
        } else {
            format!("{by} reopened the room")
        };
        self.post(room, NewMessage::system(by, line)).await?;
        room.set_archived(archived);
        room.replace(views::room_state_fragment(archived));
        self.sidebar_dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// A socket of `nickname` opened in the room. The first tab announces a join, unless the
    /// person was only reloading.
    pub fn arrive(&self, room: &Arc<Room>, nickname: &str) {
        let announce = {
            let mut presence = room.presence.lock().expect("presence lock");
            let tabs = presence.tabs.entry(nickname.to_owned()).or_insert(0);
            *tabs += 1;
            let first_tab = *tabs == 1;
            let returning = presence.leaving.remove(nickname).is_some();
            presence.presence_changed = true;
            // An archived room says nothing more, arrivals included.
            first_tab
                && !returning
                && !room.is_archived()
                && presence.tabs.len() <= self.settings.announce_limit
                && self.started.elapsed() >= self.settings.quiet_after_start
        };
        if announce {
            drop(self.submit(
                room,
                NewMessage::system(nickname, format!("{nickname} joined")),
            ));
        }
    }

    /// A socket of `nickname` closed. The last tab starts the leave debounce.
    pub fn depart(&self, room: &Arc<Room>, nickname: &str) {
        let mut presence = room.presence.lock().expect("presence lock");
        if let Some(tabs) = presence.tabs.get_mut(nickname) {
            *tabs -= 1;
            if *tabs == 0 {
                presence.tabs.remove(nickname);
                presence.typing.remove(nickname);
                presence.leaving.insert(nickname.to_owned(), Instant::now());
                presence.typing_changed = true;
            }
        }
    }

    /// `nickname` is typing in the room (throttled by the page).
    pub fn typing(&self, room: &Room, nickname: &str) {
        let mut presence = room.presence.lock().expect("presence lock");
        let until = Instant::now() + self.settings.typing_expiry;
        if presence.typing.insert(nickname.to_owned(), until).is_none() {
            presence.typing_changed = true;
        }
    }

    /// A message from `nickname` ends their typing indicator.
    pub fn stopped_typing(&self, room: &Room, nickname: &str) {
        let mut presence = room.presence.lock().expect("presence lock");
        if presence.typing.remove(nickname).is_some() {
            presence.typing_changed = true;
        }
    }

    /// Starts the ticker that flushes presence, typing and the sidebar.
    pub fn spawn_ticker(self: &Arc<Self>) {
        let hub: Weak<Hub> = Arc::downgrade(self);
        let every = self.settings.flush_interval;
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            crate::periodic::every(every, &shutdown, || async {
                // Gone only once the server stopped, and the shutdown ends this loop too.
                if let Some(hub) = hub.upgrade() {
                    hub.flush_live_state();
                }
            })
            .await;
        });
    }

    fn flush_live_state(&self) {
        let now = Instant::now();
        let rooms: Vec<Arc<Room>> = self
            .rooms
            .read()
            .expect("rooms lock")
            .values()
            .cloned()
            .collect();
        for room in rooms {
            let (here, typing, departed) = {
                let mut presence = room.presence.lock().expect("presence lock");
                let debounce = self.settings.leave_debounce;
                let mut departed = Vec::new();
                presence.leaving.retain(|name, since| {
                    let gone = now.duration_since(*since) >= debounce;
                    if gone {
                        departed.push(name.clone());
                    }
                    !gone
                });
                let typing_before = presence.typing.len();
                presence.typing.retain(|_, until| *until > now);
                if presence.typing.len() != typing_before {
                    presence.typing_changed = true;
                }
                if !departed.is_empty() {
                    presence.presence_changed = true;
                }
                let here = std::mem::take(&mut presence.presence_changed).then(|| presence.here());
                let typing = std::mem::take(&mut presence.typing_changed)
                    .then(|| presence.typing.keys().cloned().collect::<Vec<_>>());
                let quiet =
                    presence.tabs.len() <= self.settings.announce_limit && !room.is_archived();
                (here, typing, if quiet { departed } else { Vec::new() })
            };
            if let Some(here) = here {
                room.replace(views::presence_fragment(&here));
            }
            if let Some(typing) = typing {
                room.replace(views::typing_fragment(&typing));
            }
            for name in departed {
                drop(self.submit(&room, NewMessage::system(&name, format!("{name} left"))));
            }
        }
        if self.sidebar_dirty.swap(false, Ordering::AcqRel) {
            let _ = self
                .sidebar
                .send(Arc::new(SidebarUpdate::new(self.room_summaries())));
        }
    }

    /// Queues a message for the committer; the receiver resolves once it is durable and
    /// broadcast, or with the storage error.
    pub fn submit(
        &self,
        room: &Arc<Room>,
        message: NewMessage,
    ) -> oneshot::Receiver<StoreResult<Appended>> {
        self.queue_append(room, message, false)
    }

    /// Persists and broadcasts a bot's message (shown with a "bot" badge), waiting for the
    /// commit.
    pub async fn post_as_bot(
        &self,
        room: &Arc<Room>,
        message: NewMessage,
    ) -> StoreResult<Appended> {
        self.queue_append(room, message, true)
            .await
            .map_err(|_| StoreError::CommitterStopped)?
    }

    fn queue_append(
        &self,
        room: &Arc<Room>,
        message: NewMessage,
        bot: bool,
    ) -> oneshot::Receiver<StoreResult<Appended>> {
        let (reply, answer) = oneshot::channel();
        let dedup_key = message
            .dedup
            .as_ref()
            .map(|(login, client)| format!("{login}/{client}"));
        let request = AppendRequest {
            room: room.clone(),
            kind: message.kind,
            author: message.author,
            body: message.body,
            client_id: message.dedup.map(|(_, client)| client),
            dedup_key,
            reply_to: message.reply_to,
            bot,
            attachment: message.attachment,
            reply,
            queued_at: std::time::Instant::now(),
        };
        if let Err(refused) = self.committer.try_send(CommitRequest::Append(request))
            && let CommitRequest::Append(request) = refused_request(refused)
        {
            let _ = request.reply.send(Err(too_busy()));
        }
        answer
    }

    /// Edits, deletes or reacts to message `id` on behalf of `by`, through the committer so it
    /// is ordered with new messages; everyone in the room gets the new rendering.
    pub async fn change_message(
        &self,
        room: &Arc<Room>,
        id: u64,
        by: &str,
        change: MessageChange,
    ) -> Result<Arc<RenderedMessage>, ChangeError> {
        let (reply, answer) = oneshot::channel();
        let request = ChangeRequest {
            room: room.clone(),
            id,
            by: by.to_owned(),
            change,
            reply,
        };
        if let Err(refused) = self.committer.try_send(CommitRequest::Change(request)) {
            drop(refused_request(refused));
            return Err(too_busy().into());
        }
        answer.await.map_err(|_| StoreError::CommitterStopped)?
    }

    /// An admin deleted someone else's message: the same "message deleted" marker, and a
    /// line in the stream that says who did it to whose message.
    pub async fn delete_as_admin(
        &self,
        room: &Arc<Room>,
        id: u64,
        by: &str,
    ) -> Result<Arc<RenderedMessage>, ChangeError> {
        let deleted = self
            .change_message(room, id, by, MessageChange::DeleteAsAdmin)
            .await?;
        let line = format!("{by} deleted a message by {}", deleted.author);
        self.post(room, NewMessage::system(by, line)).await?;
        Ok(deleted)
    }

    /// Persists and broadcasts a message, waiting for the commit.
    pub async fn post(&self, room: &Arc<Room>, message: NewMessage) -> StoreResult<Appended> {
        self.submit(room, message)
            .await
            .map_err(|_| StoreError::CommitterStopped)?
    }

    /// The newest `PAGE` messages of a room, oldest first.
    pub async fn newest_page(&self, room: &Room) -> StoreResult<Vec<Arc<RenderedMessage>>> {
        room.ensure_loaded(&self.storage).await?;
        Ok(room.with_window(|w| w.iter().rev().take(PAGE as usize).rev().cloned().collect()))
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

    /// Counts a new socket for a login, or refuses it over the cap. The guard uncounts it.
    pub fn open_socket(self: &Arc<Self>, login_id: &str) -> Option<SocketGuard> {
        let mut logins = self.logins.lock().expect("logins lock");
        let entry = logins
            .entry(login_id.to_owned())
            .or_insert_with(|| LoginSockets {
                open: 0,
                ended: CancellationToken::new(),
                why: Arc::new(OnceLock::new()),
            });
        if entry.open >= MAX_SOCKETS_PER_LOGIN {
            return None;
        }
        entry.open += 1;
        self.metrics.sockets.increment(1.0);
        Some(SocketGuard {
            hub: self.clone(),
            login_id: login_id.to_owned(),
            ended: entry.ended.clone(),
            why: entry.why.clone(),
        })
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
    ended: CancellationToken,
    why: Arc<OnceLock<LoginEnd>>,
}

impl SocketGuard {
    /// Cancelled when the login ends.
    pub fn ended(&self) -> &CancellationToken {
        &self.ended
    }

    /// Why the login ended, once [`SocketGuard::ended`] has fired.
    pub fn end_reason(&self) -> &'static str {
        self.why
            .get()
            .copied()
            .unwrap_or(LoginEnd::LoggedOut)
            .reason()
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.hub.metrics.sockets.decrement(1.0);
        let mut logins = self.hub.logins.lock().expect("logins lock");
        if let Some(entry) = logins.get_mut(&self.login_id)
            && !entry.ended.is_cancelled()
        {
            entry.open -= 1;
            if entry.open == 0 {
                logins.remove(&self.login_id);
            }
        }
    }
}

fn refused_request(refused: mpsc::error::TrySendError<CommitRequest>) -> CommitRequest {
    match refused {
        mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
    }
}

fn too_busy() -> StoreError {
    StoreError::Busy
}

pub fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Reader records kept in memory at most; past it the cache starts over (they're on disk).
const READER_CACHE: usize = 10_000;

impl Hub {
    /// What a login has read and muted. Served from memory after the first read, since every
    /// page needs it.
    pub async fn reader(&self, login_id: &str) -> StoreResult<Arc<ReaderRecord>> {
        if let Some(cached) = self.readers.lock().expect("readers lock").get(login_id) {
            return Ok(cached.clone());
        }
        let login = login_id.to_owned();
        let found = Arc::new(
            store::blocking(&self.storage, move |s| s.reader(&login))
                .await?
                .unwrap_or_else(|| ReaderRecord {
                    login_id: login_id.to_owned(),
                    ..ReaderRecord::default()
                }),
        );
        self.remember_reader(found.clone());
        Ok(found)
    }

    fn remember_reader(&self, reader: Arc<ReaderRecord>) {
        let mut readers = self.readers.lock().expect("readers lock");
        if readers.len() >= READER_CACHE {
            readers.clear();
        }
        readers.insert(reader.login_id.clone(), reader);
    }

    /// Read-modify-write of a login's reader record, one at a time; written only if `change`
    /// changed it, so reloading a page costs no disk write.
    async fn update_reader(
        &self,
        login_id: &str,
        change: impl FnOnce(&mut ReaderRecord) + Send + 'static,
    ) -> StoreResult<()> {
        let _one_at_a_time = self.readers_lock.lock().await;
        let before = self.reader(login_id).await?;
        let mut after = ReaderRecord::clone(&before);
        change(&mut after);
        if after == *before {
            return Ok(());
        }
        let after = Arc::new(after);
        let saved = after.clone();
        store::blocking(&self.storage, move |s| s.save_reader(&saved)).await?;
        self.remember_reader(after);
        Ok(())
    }

    /// Remembers that the login has seen the room up to `id`.
    pub async fn mark_read(&self, login_id: &str, room: &Slug, id: u64) -> StoreResult<()> {
        // Every page view marks its room read: most change nothing, and need not queue
        // behind other logins' updates to find that out. Marks only grow, so a cached
        // one at or past `id` stays right.
        let seen = self
            .readers
            .lock()
            .expect("readers lock")
            .get(login_id)
            .and_then(|reader| reader.last_read.get(room.as_str()).copied());
        if seen.is_some_and(|seen| seen >= id as i64) {
            return Ok(());
        }
        let slug = room.as_str().to_owned();
        self.update_reader(login_id, move |reader| {
            let seen = reader.last_read.entry(slug).or_insert(0);
            *seen = (*seen).max(id as i64);
        })
        .await
    }

    /// Mutes or unmutes a room for the login.
    pub async fn toggle_mute(&self, login_id: &str, room: &Slug) -> StoreResult<()> {
        let slug = room.as_str().to_owned();
        self.update_reader(login_id, move |reader| {
            if let Some(at) = reader.muted.iter().position(|m| *m == slug) {
                reader.muted.remove(at);
            } else {
                reader.muted.push(slug);
            }
        })
        .await
    }
}
