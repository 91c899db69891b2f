//! Building the application, serving it, and shutting it down in order.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::serve::{Listener, ListenerExt};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::config::Config;
use crate::hub::{Committer, Hub};
use crate::rate_limit::RateLimiter;
use crate::routes::devices::DeviceLinks;
use crate::security::{self, OwnOrigin};
use crate::store::{PoloStore, SessionBackend, Storage};
use crate::{assets, auth, ops, routes};

/// A urlencoded form over this gets 413. 64 KiB still fits 4,000 CJK characters encoded.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub storage: Arc<dyn Storage>,
    pub config: Arc<Config>,
    pub origin: OwnOrigin,
    /// Nickname claims are check-then-write; one login at a time keeps two people from both
    /// winning the same name.
    pub login_lock: Arc<tokio::sync::Mutex<()>>,
    /// Every open socket, so shutdown can wait for their close frames to go out.
    pub tracker: TaskTracker,
    pub rate_limiter: Arc<RateLimiter>,
    /// The session store, also used directly to end a login on all its devices.
    pub sessions: SessionBackend,
    /// One-time links that log another device in as the same person.
    pub device_links: Arc<DeviceLinks>,
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    committer: Committer,
}

impl Application {
    /// Opens the database, loads the rooms and binds the listener (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let data_dir = config.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || PoloStore::open(&data_dir))
            .await?
            .with_context(|| format!("opening the database in {}", config.data_dir.display()))?;
        let storage: Arc<dyn Storage> = Arc::new(store);
        Self::build_with_storage(config, storage).await
    }

    /// Like [`Application::build`], on storage the caller provides (tests use a failing one).
    pub async fn build_with_storage(
        config: Config,
        storage: Arc<dyn Storage>,
    ) -> anyhow::Result<Application> {
        let hub_storage = storage.clone();
        let settings = config.live_settings();
        let (hub, committer) =
            tokio::task::spawn_blocking(move || Hub::start(hub_storage, settings))
                .await?
                .context("loading rooms")?;
        hub.spawn_ticker();
        hub.metrics().spawn_upkeep(hub.shutdown_token().clone());
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let state = AppState {
            hub,
            sessions: SessionBackend::new(storage.clone()),
            device_links: Arc::new(DeviceLinks::default()),
            storage,
            origin: OwnOrigin::new(config.public_url.as_deref()),
            login_lock: Arc::new(tokio::sync::Mutex::new(())),
            tracker: TaskTracker::new(),
            rate_limiter: Arc::new(RateLimiter::new(config.rate_limit, config.rate_burst)),
            config: Arc::new(config),
        };
        Ok(Application {
            listener,
            state,
            committer,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.address().port()
    }

    /// Serves until `shutdown` resolves, then: stops accepting, closes every socket with 1012,
    /// lets the committer flush what is queued, all within the configured grace period.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            state,
            committer,
        } = self;
        let grace = state.config.shutdown_grace();
        let header_timeout = state.config.header_timeout();
        let hub_shutdown = state.hub.shutdown_token().clone();
        let tracker = state.tracker.clone();
        tokio::spawn(auth::end_expired_logins(state.clone()));
        let router = router(state);

        let stopping = hub_shutdown.clone();
        let mut serve = pin!(serve(listener, router, header_timeout, async move {
            shutdown.await;
            tracing::info!("shutting down");
            stopping.cancel();
        }));
        let served = tokio::select! {
            () = &mut serve => true,
            () = hub_shutdown.cancelled() => false,
        };
        // The grace period starts with the shutdown, however long the server ran before it.
        let deadline = tokio::time::Instant::now() + grace;
        // Without a deadline a hung HTTP request could hold up the exit. (A finished future
        // must not be polled again.)
        if !served && tokio::time::timeout_at(deadline, serve).await.is_err() {
            tracing::warn!("some requests did not finish in time");
        }
        tracker.close();
        if tokio::time::timeout_at(deadline, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sockets did not close in time");
        }
        // The committer drains its queue once the last hub handle is gone.
        let flushed = tokio::task::spawn_blocking(move || committer.join());
        if tokio::time::timeout_at(deadline + Duration::from_secs(1), flushed)
            .await
            .is_err()
        {
            tracing::warn!("the committer did not finish in time");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Serves HTTP/1.1 with WebSocket upgrades until `shutdown` resolves, then stops accepting
/// and lets each connection finish its request before it closes. Upgraded sockets are no
/// longer connections here: the caller closes them.
///
/// hyper's own loop rather than `axum::serve`, which has no header-read timeout: a client
/// sending its headers a byte at a time (slowloris) would hold its connection forever.
async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    // Chat frames are small and latency-bound: don't let Nagle hold them back.
    let mut listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let draining = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let connection = http
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router.clone()))
            .with_upgrades();
        let draining = draining.clone();
        connections.spawn(async move {
            let mut connection = pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = draining.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    draining.cancel();
    connections.close();
    connections.wait().await;
}

pub fn router(state: AppState) -> Router {
    let sessions = SessionManagerLayer::new(state.sessions.clone())
        .with_name("chat_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.config.secure_cookies)
        .with_expiry(Expiry::OnInactivity(
            time::Duration::try_from(state.config.session_lifetime())
                .unwrap_or(time::Duration::MAX),
        ));

    Router::new()
        .route("/", get(routes::rooms::welcome))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/join/{code}", get(auth::join))
        .route("/devices/link", get(routes::devices::new_link))
        .route(
            "/devices/claim/{token}",
            get(routes::devices::confirm_claim).post(routes::devices::claim),
        )
        .route("/rooms", post(routes::rooms::create_room))
        .route("/dm/{nickname}", get(routes::rooms::open_direct))
        .route("/rooms/{slug}", get(routes::rooms::show_room))
        .route(
            "/rooms/{slug}/messages",
            get(routes::rooms::older_messages).post(routes::rooms::post_message),
        )
        .route(
            "/rooms/{slug}/messages/{id}",
            get(routes::messages::show_message)
                .put(routes::messages::update_message)
                .delete(routes::messages::delete_message),
        )
        .route(
            "/rooms/{slug}/messages/{id}/edit",
            get(routes::messages::edit_form),
        )
        .route(
            "/rooms/{slug}/messages/{id}/reactions",
            post(routes::messages::toggle_reaction),
        )
        .route(
            "/rooms/{slug}/mentions",
            get(routes::rooms::mention_suggestions),
        )
        .route("/rooms/{slug}/ws", get(routes::ws::room_socket))
        .route("/search", get(routes::search::search))
        .route("/rooms/{slug}/topic", post(routes::rooms::set_topic))
        .route("/rooms/{slug}/mute", post(routes::rooms::toggle_mute))
        .route("/ws", get(routes::ws::global_socket))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::reject_cross_site,
        ))
        .layer(sessions)
        .route("/healthz", get(routes::healthz))
        .merge(ops::http::router())
        .route("/static/{*path}", get(assets::serve))
        .layer(middleware::from_fn(security::security_headers))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout(),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
