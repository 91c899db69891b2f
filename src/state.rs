//! The application state every handler shares: one `Arc` of the services.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::AdminSecrets;
use crate::bots::Bots;
use crate::claim_lock::ClaimLock;
use crate::config::Config;
use crate::devices::DeviceLinks;
use crate::files::FileStore;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::rate_limit::{CreationLimits, Guesses, RateLimiter};
use crate::security::OwnOrigin;
use crate::store::{SessionBackend, Storage};

/// What every handler shares. One `Arc`: extractors and middleware clone the state for
/// every request, and a dozen reference counts per clone showed in the room page's profile.
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl AppState {
    pub fn new(app: App) -> AppState {
        AppState(Arc::new(app))
    }
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

pub struct App {
    /// Cancelled when the server shuts down: the ticker, upkeep and every socket stop.
    pub shutdown: CancellationToken,
    /// What `/metrics` reports; the hub and the sockets record into it.
    pub metrics: Arc<Metrics>,
    pub hub: Arc<Hub>,
    pub storage: Arc<dyn Storage>,
    pub config: Arc<Config>,
    pub origin: OwnOrigin,
    /// One nickname claim decided at a time, across servers sharing the database.
    pub claims: ClaimLock,
    /// Every open socket, so shutdown can wait for their close frames to go out.
    pub tracker: TaskTracker,
    pub rate_limiter: Arc<RateLimiter>,
    /// Rooms and bots one login or client address may create.
    pub creation: Arc<CreationLimits>,
    /// Wrong guesses at the admin token, setup link and join code, per client address.
    pub guesses: Guesses,
    /// The session store, also used directly to end a login on all its devices.
    pub sessions: SessionBackend,
    /// One-time links that log another device in as the same person.
    pub device_links: Arc<DeviceLinks>,
    /// Digests of the admin token and the setup link; see [`crate::admin`].
    pub admin: Arc<AdminSecrets>,
    /// Every bot, in memory: the API authenticates against it on every request.
    pub bots: Arc<Bots>,
    /// Attached files on disk, under `--data-dir/files`.
    pub files: Arc<FileStore>,
}
