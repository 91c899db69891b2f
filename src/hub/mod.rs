//! Rooms, their live subscribers, and the committer that persists messages before anyone
//! sees them.
//!
//! A message goes: connection → committer thread (group commit into the store, which gives
//! the ids) → rendered once → pushed into the room's recent window → the same bytes broadcast
//! to every subscriber. When several instances share a PostgreSQL database, each one's
//! listener thread reads what the others stored (`listener`); both paths pass one gate per
//! room (`Room::publish_stored`), so ids, window order and broadcast order always agree.
//! Presence, typing and the sidebar are flushed by one ticker, at most once per
//! interval, so a busy room never turns every keystroke or connect into a broadcast storm.

mod committer;
mod history;
mod listener;
mod logins;
mod presence;
mod readers;
mod registry;
mod room;
mod room_settings;
mod shared_presence;
mod sidebar;
mod submit;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::now_millis;
use crate::domain::Slug;
use crate::metrics::Metrics;
pub use crate::store::Appended;
use crate::store::{
    MessageRecord, ReaderRecord, RoomPresence, RoomRecord, Storage, StoreError, StoreResult,
};
use committer::{CommitRequest, run_committer};
use logins::LoginSockets;
pub use logins::SocketGuard;
pub use room::{CatchUp, LiveEvent, Missed, Room};
pub use sidebar::SidebarUpdate;
pub use submit::{ChangeError, MessageChange, NewMessage, committed};

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

/// What the hub tells the bots.
pub trait BotsHook: Send + Sync {
    /// The ids of the bots whose webhooks get `message`, which names `mentions` (the mention
    /// keys of people and bots). Asked on the committer thread before the commit, so that a
    /// shared store queues the deliveries with the message: it must not block.
    fn webhooks_for(
        &self,
        room: &Room,
        message: &MessageRecord,
        mentions: &[String],
    ) -> Vec<String>;
    /// `message` is stored, and goes to the webhooks of `bots` (as `webhooks_for` gave
    /// them). Called on the committer thread right after the commit, so it must hand work
    /// off, never block.
    fn mentioned(&self, message: &MessageRecord, bots: &[String]);
    /// Another instance sharing the database created, changed or deleted a bot (or may
    /// have). Called on the listener's thread, which may block.
    fn changed_elsewhere(&self);
}

/// Timing of the live extras; flags (defaults in `Config`), so tests can shorten them.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// At most one presence, typing or sidebar fragment per room per interval.
    pub flush_interval: Duration,
    /// A typing indicator disappears this long after the last keystroke.
    pub typing_expiry: Duration,
    /// A person whose last tab closed stays under "Here now" this long, so a reload
    /// doesn't flicker them out and back.
    pub leave_debounce: Duration,
    /// "joined"/"left" lines are posted only while at most this many people are present.
    pub announce_limit: usize,
    /// No "joined" lines this long after start.
    pub quiet_after_start: Duration,
    /// With several instances on one database: one whose heartbeat is older than this no
    /// longer counts in "Here now" (it died). Heartbeats come four times as often.
    pub instance_timeout: Duration,
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
    bots_hook: Arc<OnceLock<Arc<dyn BotsHook>>>,
    /// Shared with the committer thread, which records each batch.
    metrics: Arc<Metrics>,
    /// To the thread that shares this instance's presence, when the database is shared.
    presence_shares: Option<std::sync::mpsc::Sender<Vec<RoomPresence>>>,
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
    /// `metrics` and `shutdown` are the application's: the hub records into them and stops
    /// its ticker when the server shuts down.
    pub fn start(
        storage: Arc<dyn Storage>,
        settings: LiveSettings,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
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
        let bots_hook: Arc<OnceLock<Arc<dyn BotsHook>>> = Arc::default();
        let committer_hook = bots_hook.clone();
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
        let announcements = storage.announcements()?;
        let (presence_shares, shared_presence) = if storage.is_shared() {
            let (tx, rx) = std::sync::mpsc::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
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
            shutdown,
            bots_hook,
            metrics,
            presence_shares,
        });
        if let Some(announcements) = announcements {
            listener::spawn(&hub, announcements)?;
        }
        if let Some(shares) = shared_presence {
            shared_presence::spawn(&hub, shares)?;
        }
        Ok((hub, Committer { thread }))
    }

    /// Sets what hears about mentions; only the first call counts.
    pub fn set_bots_hook(&self, hook: Arc<dyn BotsHook>) {
        if self.bots_hook.set(hook).is_err() {
            tracing::warn!("a mention hook was already set");
        }
    }
}
