//! Building the application, serving it, and shutting it down in order.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::serve::{Listener, ListenerExt};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::admin::AdminSecrets;
use crate::bots::Bots;
use crate::bots::webhook::{MentionWebhooks, Webhooks};
use crate::claim_lock::ClaimLock;
use crate::config::Config;
use crate::devices::{DeviceLinks, PendingLinks};
use crate::files::FileStore;
use crate::hub::{Committer, Hub};
use crate::metrics::Metrics;
use crate::rate_limit::{CreationLimits, Guesses, Quota, RateLimiter};
use crate::security::{LocalAddr, OwnOrigin};
use crate::state::{App, AppState};
use crate::store::{self, PgStore, PoloStore, SessionBackend, Storage};
use crate::{routes, upkeep};

/// PostgreSQL with `--database-url`, otherwise PoloDB under `--data-dir`.
async fn open_storage(config: &Config) -> anyhow::Result<Arc<dyn Storage>> {
    if let Some(url) = config.database_url.clone() {
        let store = tokio::task::spawn_blocking(move || PgStore::connect(&url))
            .await?
            .context("connecting to PostgreSQL (--database-url)")?;
        return Ok(Arc::new(store.notifying_in_commit(config.notify_in_commit)));
    }
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || PoloStore::open(&data_dir))
        .await?
        .with_context(|| format!("opening the database in {}", config.data_dir.display()))?;
    Ok(Arc::new(store))
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    committer: Committer,
    admin_setup_link: Option<String>,
}

impl Application {
    /// Opens the database, loads the rooms and binds the listener (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        check_exposure(&config)?;
        let storage = open_storage(&config).await?;
        Self::build_with_storage(config, storage).await
    }

    /// Like [`Application::build`], on storage the caller provides (tests use a failing one).
    pub async fn build_with_storage(
        config: Config,
        storage: Arc<dyn Storage>,
    ) -> anyhow::Result<Application> {
        check_exposure(&config)?;
        store::blocking(&storage, store::upgrade)
            .await
            .context("upgrading the stored data")?;
        let hub_storage = storage.clone();
        let settings = config.live_settings();
        let metrics = Metrics::new();
        let shutdown = CancellationToken::new();
        let (hub_metrics, hub_shutdown) = (metrics.clone(), shutdown.clone());
        let (hub, committer) = tokio::task::spawn_blocking(move || {
            Hub::start(hub_storage, settings, hub_metrics, hub_shutdown)
        })
        .await?
        .context("loading rooms")?;
        hub.spawn_ticker();
        let bots_storage = storage.clone();
        let allow_private_webhooks = config.allow_private_webhooks;
        let bots = Arc::new(
            tokio::task::spawn_blocking(move || Bots::load(bots_storage, allow_private_webhooks))
                .await?
                .context("loading bots")?,
        );
        let webhooks = Webhooks::start(
            config.webhook_settings(),
            &storage,
            bots.clone(),
            config.public_url.clone(),
            shutdown.clone(),
        );
        hub.set_bots_hook(Arc::new(MentionWebhooks {
            bots: bots.clone(),
            webhooks,
            public_url: config.public_url.clone(),
        }));
        metrics.spawn_upkeep(shutdown.clone());
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let origin = OwnOrigin::new(
            config.public_url.as_deref(),
            listener.local_addr().unwrap_or(config.addr),
        )
        .map_err(anyhow::Error::msg)?;
        let admin_storage = storage.clone();
        let admin_token = config.admin_token.clone();
        let (admin, setup_token) = tokio::task::spawn_blocking(move || {
            AdminSecrets::load(admin_token.as_deref(), admin_storage)
        })
        .await?
        .context("loading the admin secrets")?;
        let admin_setup_link = setup_token.map(|token| {
            let base = match &config.public_url {
                Some(public) => public.trim_end_matches('/').to_owned(),
                None => format!("http://{}", listener.local_addr().unwrap_or(config.addr)),
            };
            let link = format!("{base}/admin?token={token}");
            tracing::warn!(
                link = %link,
                "no admin yet: open this link while logged in to become the admin; it works \
                 once, and a restart before then prints a new one"
            );
            link
        });
        let files_dir = config.data_dir.join("files");
        let files_storage = storage.clone();
        let files =
            tokio::task::spawn_blocking(move || FileStore::open(&files_dir, &files_storage))
                .await?
                .context("opening the attachments directory")?;
        let state = AppState::new(App {
            admin: Arc::new(admin),
            hub,
            shutdown,
            metrics,
            files: Arc::new(files),
            sessions: if storage.is_shared() {
                SessionBackend::shared(storage.clone())
            } else {
                SessionBackend::new(storage.clone())
            },
            device_links: Arc::new(if storage.is_shared() {
                DeviceLinks::InStore(storage.clone())
            } else {
                DeviceLinks::InMemory(PendingLinks::default())
            }),
            bots,
            claims: ClaimLock::new(storage.clone()),
            guesses: if storage.is_shared() {
                Guesses::Shared {
                    storage: storage.clone(),
                    fallback: config.guess_limiter(),
                }
            } else {
                Guesses::Here(config.guess_limiter())
            },
            storage,
            origin,
            tracker: TaskTracker::new(),
            rate_limiter: Arc::new(RateLimiter::new(config.rate_limit, config.rate_burst)),
            creation: Arc::new(CreationLimits {
                rooms: RateLimiter::per_minute(config.room_rate),
                rooms_per_login: Quota::new(config.rooms_per_login),
                reserved_names: RateLimiter::per_hour(config.bot_rate),
            }),
            config: Arc::new(config),
        });
        Ok(Application {
            listener,
            state,
            committer,
            admin_setup_link,
        })
    }

    /// The one-time admin setup link printed at start, if one was made (no `--admin-token`,
    /// and none redeemed yet).
    pub fn admin_setup_link(&self) -> Option<&str> {
        self.admin_setup_link.as_deref()
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
            ..
        } = self;
        let grace = state.config.shutdown_grace();
        let header_timeout = state.config.header_timeout();
        let hub_shutdown = state.shutdown.clone();
        let tracker = state.tracker.clone();
        tokio::spawn(upkeep::end_expired_logins(state.clone()));
        tokio::spawn(upkeep::delete_expired_sessions(state.clone()));
        let router = routes::router(state);

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

/// Refuses a `--public-url` that is not an origin, and serving on an address other machines
/// can reach without one: the `Host` check would then know no name but the loopback ones.
fn check_exposure(config: &Config) -> anyhow::Result<()> {
    OwnOrigin::new(config.public_url.as_deref(), config.addr).map_err(anyhow::Error::msg)?;
    if config.public_url.is_none() && !config.addr.ip().is_loopback() {
        anyhow::bail!(
            "--addr {} can be reached from other machines, so the server needs --public-url \
             (env CHAT_PUBLIC_URL): the address people open, such as \
             https://chat.example.com. It answers only requests for that host (and for \
             localhost), so no other site's name can be pointed at it (DNS rebinding).",
            config.addr
        );
    }
    Ok(())
}

/// Each connection's kernel send buffer (Linux doubles it, for its bookkeeping): enough for
/// 20 MB/s of downloads at 50 ms round trips, small enough that a socket whose reader
/// stopped fills it in under half a minute of a busy room.
const SEND_BUFFER: usize = 512 * 1024;

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
    let mut listener = listener.tap_io(|tcp| {
        // Chat frames are small and latency-bound: don't let Nagle hold them back.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        // Autotuned, the kernel would hold up to 4 MiB for a reader that stopped: a minute
        // of a busy room, so the socket's own backlog would never fill and close it.
        if let Err(e) = rustix::net::sockopt::set_socket_send_buffer_size(&*tcp, SEND_BUFFER) {
            tracing::debug!(error = %e, "could not set SO_SNDBUF");
        }
    });
    let draining = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // What axum's `ConnectInfo` would carry, and our side of the connection, for the
        // `Host` check and the client's address.
        let local = LocalAddr(tcp.local_addr().unwrap_or(peer));
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.extensions_mut().insert(local);
                request
            });
        let connection = http
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
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
