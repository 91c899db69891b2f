//! Rooms, their live subscribers, and the committer that persists messages before anyone
//! sees them.
//!
//! A message goes: connection → committer thread (group commit into the store) → rendered
//! once → pushed into the room's recent window → the same bytes broadcast to every subscriber.
//! The committer is the only writer of message ids, so ids, window order and broadcast order
//! always agree.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;

use axum::extract::ws::Utf8Bytes;
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::domain::{RoomName, Slug};
use crate::store::{
    AppendBatch, DedupRecord, MessageKind, MessageRecord, RoomRecord, Storage, StoreError,
    StoreResult,
};
use crate::views;

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
/// Recently seen `(login, client_id)` keys kept in memory, so most resends skip the database.
const DEDUP_CACHE: usize = 16_384;
/// Open sockets one login may hold.
pub const MAX_SOCKETS_PER_LOGIN: usize = 20;

/// One message, rendered once with `_message.html`.
#[derive(Debug)]
pub struct RenderedMessage {
    pub id: u64,
    pub html: String,
}

/// What a room pushes to its subscribers. Each frame is built once and shared.
#[derive(Debug)]
pub enum LiveEvent {
    Message { id: u64, frame: Utf8Bytes },
}

pub struct Room {
    pub slug: Slug,
    pub name: String,
    pub topic: String,
    /// Newest committed id; written only by the committer after the window holds the message.
    last_id: AtomicU64,
    last_activity: AtomicI64,
    window: Mutex<Window>,
    /// Serialises the first load of the window, so two readers don't both hit the database.
    window_load: tokio::sync::Mutex<()>,
    live: broadcast::Sender<Arc<LiveEvent>>,
}

/// The newest messages of a room. Until the first reader loads it from disk, messages
/// committed meanwhile collect in `pending` (contiguous, since every commit passes here).
enum Window {
    Unloaded {
        pending: VecDeque<Arc<RenderedMessage>>,
    },
    Loaded(VecDeque<Arc<RenderedMessage>>),
}

/// Result of a catch-up request.
pub enum CatchUp {
    /// The messages after the client's newest, in order (possibly none).
    Replay(Vec<Arc<RenderedMessage>>),
    /// Too many missed: replace the whole list with the newest page.
    Reset(Vec<Arc<RenderedMessage>>),
}

impl Room {
    fn from_record(record: RoomRecord) -> Room {
        Room {
            slug: record.slug,
            name: record.name,
            topic: record.topic,
            last_id: AtomicU64::new(record.last_id.max(0) as u64),
            last_activity: AtomicI64::new(record.last_activity),
            window: Mutex::new(Window::Unloaded {
                pending: VecDeque::new(),
            }),
            window_load: tokio::sync::Mutex::new(()),
            live: broadcast::channel(BROADCAST_CAPACITY).0,
        }
    }

    pub fn last_id(&self) -> u64 {
        self.last_id.load(Ordering::Acquire)
    }

    /// Unix milliseconds of the newest message or of creation.
    pub fn last_activity(&self) -> i64 {
        self.last_activity.load(Ordering::Acquire)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.live.subscribe()
    }

    fn publish(&self, message: Arc<RenderedMessage>, created_at: i64) {
        let frame = Utf8Bytes::from(views::append_fragment([message.as_ref()]));
        let id = message.id;
        {
            let mut window = self.window.lock().expect("window lock");
            let entries = match &mut *window {
                Window::Loaded(entries) => entries,
                Window::Unloaded { pending } => pending,
            };
            entries.push_back(message);
            while entries.len() > WINDOW {
                entries.pop_front();
            }
            if let Window::Unloaded { pending } = &mut *window
                && pending.len() >= WINDOW
            {
                // A full window of contiguous messages needs nothing from disk.
                *window = Window::Loaded(std::mem::take(pending));
            }
        }
        self.last_id.store(id, Ordering::Release);
        self.last_activity.store(created_at, Ordering::Release);
        // No subscribers is fine: the message is stored and in the window.
        let _ = self.live.send(Arc::new(LiveEvent::Message { id, frame }));
    }

    async fn ensure_loaded(&self, storage: &Arc<dyn Storage>) -> StoreResult<()> {
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
            let storage = storage.clone();
            let slug = self.slug.clone();
            tokio::task::spawn_blocking(move || storage.messages(&slug, from, last))
                .await
                .map_err(|e| StoreError(e.to_string()))??
        };
        let mut loaded: VecDeque<Arc<RenderedMessage>> =
            records.iter().map(|r| Arc::new(render(r))).collect();
        let mut window = self.window.lock().expect("window lock");
        if let Window::Unloaded { pending } = &mut *window {
            loaded.extend(pending.drain(..).filter(|m| m.id > last));
            while loaded.len() > WINDOW {
                loaded.pop_front();
            }
            *window = Window::Loaded(loaded);
        }
        Ok(())
    }

    fn is_loaded(&self) -> bool {
        matches!(*self.window.lock().expect("window lock"), Window::Loaded(_))
    }

    /// Reads the loaded window; callers make sure it is loaded first.
    fn with_window<T>(&self, read: impl FnOnce(&VecDeque<Arc<RenderedMessage>>) -> T) -> T {
        match &*self.window.lock().expect("window lock") {
            Window::Loaded(entries) => read(entries),
            Window::Unloaded { pending } => read(pending),
        }
    }
}

fn render(record: &MessageRecord) -> RenderedMessage {
    RenderedMessage {
        id: record.id as u64,
        html: views::render_message(record),
    }
}

/// A request to persist one message, answered once it is committed (or refused).
struct AppendRequest {
    room: Arc<Room>,
    kind: MessageKind,
    author: String,
    body: String,
    client_id: Option<String>,
    dedup_key: Option<String>,
    reply: oneshot::Sender<StoreResult<Appended>>,
}

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
}

pub struct Hub {
    storage: Arc<dyn Storage>,
    /// Read on every page and upgrade, written only when a room is created.
    rooms: RwLock<HashMap<Slug, Arc<Room>>>,
    committer: mpsc::Sender<AppendRequest>,
    /// Open sockets per login: the per-login cap, and the token that ends them on logout.
    logins: Mutex<HashMap<String, LoginSockets>>,
    shutdown: CancellationToken,
}

struct LoginSockets {
    open: usize,
    ended: CancellationToken,
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
    pub fn start(storage: Arc<dyn Storage>) -> StoreResult<(Arc<Hub>, Committer)> {
        let lobby = new_room_record(Slug::lobby(), "lobby".into(), String::new(), "");
        storage.create_room(&lobby)?;
        let rooms = storage
            .rooms()?
            .into_iter()
            .map(|record| (record.slug.clone(), Arc::new(Room::from_record(record))))
            .collect();
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let committer_storage = storage.clone();
        let thread = thread::Builder::new()
            .name("committer".into())
            .spawn(move || run_committer(committer_storage.as_ref(), rx))
            .map_err(|e| StoreError(format!("cannot start the committer: {e}")))?;
        let hub = Arc::new(Hub {
            storage,
            rooms: RwLock::new(rooms),
            committer: tx,
            logins: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
        });
        Ok((hub, Committer { thread }))
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Cancelled when the server shuts down: every socket closes with 1012.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    pub fn room(&self, slug: &Slug) -> Option<Arc<Room>> {
        self.rooms.read().expect("rooms lock").get(slug).cloned()
    }

    /// Every room, most recently active first.
    pub fn rooms_by_activity(&self) -> Vec<Arc<Room>> {
        let mut rooms: Vec<_> = self
            .rooms
            .read()
            .expect("rooms lock")
            .values()
            .cloned()
            .collect();
        rooms.sort_by(|a, b| {
            b.last_activity()
                .cmp(&a.last_activity())
                .then_with(|| a.slug.cmp(&b.slug))
        });
        rooms
    }

    /// Returns the room with this name's slug, creating it if needed.
    pub async fn open_room(&self, name: &RoomName, creator: &str) -> StoreResult<Arc<Room>> {
        if let Some(room) = self.room(name.slug()) {
            return Ok(room);
        }
        let record = new_room_record(
            name.slug().clone(),
            name.as_str().to_owned(),
            String::new(),
            creator,
        );
        let storage = self.storage.clone();
        let insert = record.clone();
        tokio::task::spawn_blocking(move || storage.create_room(&insert))
            .await
            .map_err(|e| StoreError(e.to_string()))??;
        let mut rooms = self.rooms.write().expect("rooms lock");
        Ok(rooms
            .entry(record.slug.clone())
            .or_insert_with(|| Arc::new(Room::from_record(record)))
            .clone())
    }

    /// Queues a message for the committer; the receiver resolves once it is durable and
    /// broadcast, or with the storage error.
    pub fn submit(
        &self,
        room: &Arc<Room>,
        message: NewMessage,
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
            reply,
        };
        if let Err(refused) = self.committer.try_send(request) {
            let request = match refused {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
            };
            let _ = request.reply.send(Err(StoreError(
                "the server is too busy to store messages".into(),
            )));
        }
        answer
    }

    /// Persists and broadcasts a message, waiting for the commit.
    pub async fn post(&self, room: &Arc<Room>, message: NewMessage) -> StoreResult<Appended> {
        self.submit(room, message)
            .await
            .map_err(|_| StoreError("the committer stopped".into()))?
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
        let storage = self.storage.clone();
        let slug = room.slug.clone();
        let records = tokio::task::spawn_blocking(move || storage.messages(&slug, from, to))
            .await
            .map_err(|e| StoreError(e.to_string()))??;
        Ok(records.iter().map(|r| Arc::new(render(r))).collect())
    }

    /// What a client whose newest message is `after` has missed.
    pub async fn catch_up(&self, room: &Room, after: u64) -> StoreResult<CatchUp> {
        room.ensure_loaded(&self.storage).await?;
        Ok(room.with_window(|w| {
            let newest = w.back().map_or(0, |m| m.id);
            let oldest = w.front().map_or(1, |m| m.id);
            let missed = newest.saturating_sub(after);
            if missed > RESET_THRESHOLD || after + 1 < oldest {
                CatchUp::Reset(w.iter().rev().take(PAGE as usize).rev().cloned().collect())
            } else {
                CatchUp::Replay(w.iter().filter(|m| m.id > after).cloned().collect())
            }
        }))
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
            });
        if entry.open >= MAX_SOCKETS_PER_LOGIN {
            return None;
        }
        entry.open += 1;
        Some(SocketGuard {
            hub: self.clone(),
            login_id: login_id.to_owned(),
            ended: entry.ended.clone(),
        })
    }

    /// Ends every socket of a login (logout): they close with 1008.
    pub fn end_login(&self, login_id: &str) {
        if let Some(entry) = self.logins.lock().expect("logins lock").remove(login_id) {
            entry.ended.cancel();
        }
    }
}

/// One counted socket of a login.
pub struct SocketGuard {
    hub: Arc<Hub>,
    login_id: String,
    ended: CancellationToken,
}

impl SocketGuard {
    /// Cancelled when the login ends.
    pub fn ended(&self) -> &CancellationToken {
        &self.ended
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
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

fn new_room_record(slug: Slug, name: String, topic: String, creator: &str) -> RoomRecord {
    let now = now_millis();
    RoomRecord {
        slug,
        name,
        topic,
        created_by: creator.to_owned(),
        created_at: now,
        last_id: 0,
        last_activity: now,
    }
}

pub fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
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
fn run_committer(storage: &dyn Storage, mut requests: mpsc::Receiver<AppendRequest>) {
    let mut dedup = DedupCache {
        ids: HashMap::new(),
        order: VecDeque::new(),
    };
    while let Some(first) = requests.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit_batch(storage, &mut dedup, batch);
    }
}

fn commit_batch(storage: &dyn Storage, dedup: &mut DedupCache, requests: Vec<AppendRequest>) {
    let now = now_millis();
    let mut next_ids: HashMap<Slug, (Arc<Room>, u64)> = HashMap::new();
    let mut batch = AppendBatch::default();
    let mut accepted = Vec::with_capacity(requests.len());
    let mut keys_in_batch: HashMap<String, u64> = HashMap::new();

    for request in requests {
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
            .or_insert_with(|| (request.room.clone(), request.room.last_id()));
        slot.1 += 1;
        let id = slot.1;
        let record = MessageRecord {
            key: MessageRecord::key_for(&request.room.slug, id),
            room: request.room.slug.clone(),
            id: id as i64,
            kind: request.kind,
            author: request.author.clone(),
            body: request.body.clone(),
            created_at: now,
            client_id: request.client_id.clone(),
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
        return;
    }
    batch.room_heads = next_ids
        .into_iter()
        .map(|(slug, (_, last))| (slug, last as i64, now))
        .collect();

    match storage.append(&batch) {
        Ok(()) => {
            for (request, record) in accepted.into_iter().zip(&batch.messages) {
                let id = record.id as u64;
                request.room.publish(Arc::new(render(record)), now);
                if let Some(key) = request.dedup_key {
                    dedup.insert(key, id);
                }
                let _ = request.reply.send(Ok(Appended::Stored(id)));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, messages = accepted.len(), "commit failed");
            for request in accepted {
                let _ = request.reply.send(Err(StoreError(e.0.clone())));
            }
        }
    }
}
