//! Command-line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::hub::LiveSettings;
use crate::ops::cli::Command;

/// A lean, self-hosted real-time web chat.
///
/// Run without a subcommand, it serves. Every flag falls back to an environment variable
/// named `CHAT_` + the flag in upper case.
#[derive(Debug, Parser)]
#[command(name = "chat", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The server's flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "chat", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CHAT_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Directory that holds the embedded database.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// The server's own origin (e.g. `https://chat.example.com`) when it runs behind a proxy.
    /// WebSocket `Origin` and cross-site checks compare against it; without it the origin is
    /// derived from the request's `Host`.
    #[arg(long, env = "CHAT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Mark cookies `Secure`, for HTTPS deployments.
    #[arg(long, env = "CHAT_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Log filter, in `tracing_subscriber::EnvFilter` syntax.
    #[arg(long, env = "CHAT_LOG", default_value = "info")]
    pub log: String,

    /// A code people must give to log in (in the form, or through an invite link
    /// `/join/CODE`). Without it, anyone who can reach the server may pick a nickname.
    #[arg(long, env = "CHAT_JOIN_CODE")]
    pub join_code: Option<String>,

    /// Messages per second one login may send (0 turns the limit off).
    #[arg(long, env = "CHAT_RATE_LIMIT", default_value_t = 10.0)]
    pub rate_limit: f64,

    /// Messages one login may send in a burst before the rate applies.
    #[arg(long, env = "CHAT_RATE_BURST", default_value_t = 30.0)]
    pub rate_burst: f64,

    /// Days a session lasts without being used; then it ends and its nickname is free.
    #[arg(long, env = "CHAT_SESSION_DAYS", default_value_t = 30)]
    pub session_days: u32,

    /// Seconds between WebSocket pings; a peer that misses two pongs is dropped.
    #[arg(long, env = "CHAT_PING_INTERVAL", default_value_t = 30.0)]
    pub ping_interval: f64,

    /// Seconds a connection waits for the page's `resume_after` before it goes live anyway.
    #[arg(long, env = "CHAT_RESUME_GRACE", default_value_t = 1.0)]
    pub resume_grace: f64,

    /// Seconds between flushes of presence, typing and sidebar updates (at most one of each
    /// per room per interval).
    #[arg(long, env = "CHAT_FLUSH_INTERVAL", default_value_t = 1.0)]
    pub flush_interval: f64,

    /// Seconds a typing indicator lasts after the last keystroke.
    #[arg(long, env = "CHAT_TYPING_EXPIRY", default_value_t = 3.0)]
    pub typing_expiry: f64,

    /// Seconds after someone's last tab closes before they are announced as left.
    #[arg(long, env = "CHAT_LEAVE_DEBOUNCE", default_value_t = 5.0)]
    pub leave_debounce: f64,

    /// Post "joined"/"left" lines only while a room has at most this many people present.
    #[arg(long, env = "CHAT_ANNOUNCE_LIMIT", default_value_t = 50)]
    pub announce_limit: usize,

    /// Seconds after start without "joined" lines, so pages reconnecting after a restart
    /// don't look like people arriving.
    #[arg(long, env = "CHAT_QUIET_AFTER_START", default_value_t = 30.0)]
    pub quiet_after_start: f64,

    /// Seconds that graceful shutdown may take before the process exits regardless.
    #[arg(long, env = "CHAT_SHUTDOWN_GRACE", default_value_t = 10.0)]
    pub shutdown_grace: f64,

    /// Seconds a connection may take to send a request's headers, and may stay idle between
    /// requests, before it is closed (so slow clients can't hold connections open).
    #[arg(long, env = "CHAT_HEADER_TIMEOUT", default_value_t = 10.0)]
    pub header_timeout: f64,

    /// Seconds an HTTP request may take, body included, before it gets 408. A WebSocket is not
    /// limited by it once upgraded.
    #[arg(long, env = "CHAT_REQUEST_TIMEOUT", default_value_t = 30.0)]
    pub request_timeout: f64,

    /// A secret that grants the operations endpoints (`/metrics`, backup, export) to requests
    /// carrying `Authorization: Bearer <token>`. Without it they answer 404.
    #[arg(long, env = "CHAT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Tests only: sessions last this long unused, instead of `session_days`.
    #[arg(skip)]
    pub session_lifetime_override: Option<Duration>,

    /// How often open sockets are checked for a session that expired.
    #[arg(skip = Duration::from_secs(60))]
    pub expiry_check_interval: Duration,
}

impl Config {
    /// A configuration for tests: an ephemeral port on loopback and the given data directory.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            public_url: None,
            secure_cookies: false,
            join_code: None,
            log: "warn".into(),
            // Tests that flood a room turn it on themselves.
            rate_limit: 0.0,
            rate_burst: 30.0,
            session_days: 30,
            ping_interval: 30.0,
            resume_grace: 1.0,
            flush_interval: 0.1,
            typing_expiry: 3.0,
            leave_debounce: 0.5,
            announce_limit: 50,
            quiet_after_start: 0.0,
            shutdown_grace: 10.0,
            header_timeout: 10.0,
            request_timeout: 30.0,
            admin_token: None,
            session_lifetime_override: None,
            expiry_check_interval: Duration::from_secs(1),
        }
    }

    pub fn live_settings(&self) -> LiveSettings {
        LiveSettings {
            flush_interval: seconds(self.flush_interval.max(0.01)),
            typing_expiry: seconds(self.typing_expiry),
            leave_debounce: seconds(self.leave_debounce),
            announce_limit: self.announce_limit,
            quiet_after_start: seconds(self.quiet_after_start),
        }
    }

    pub fn ping_interval(&self) -> Duration {
        seconds(self.ping_interval.max(0.01))
    }

    pub fn resume_grace(&self) -> Duration {
        seconds(self.resume_grace)
    }

    pub fn shutdown_grace(&self) -> Duration {
        seconds(self.shutdown_grace)
    }

    /// How long a session lasts unused.
    pub fn session_lifetime(&self) -> Duration {
        self.session_lifetime_override
            .unwrap_or(Duration::from_secs(u64::from(self.session_days) * 86_400))
    }

    pub fn header_timeout(&self) -> Duration {
        seconds(self.header_timeout.max(0.01))
    }

    pub fn request_timeout(&self) -> Duration {
        seconds(self.request_timeout.max(0.01))
    }
}

/// Seconds from a flag; negative or non-finite values count as zero.
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::ZERO)
}
