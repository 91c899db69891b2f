//! Command-line and environment configuration.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::bots::webhook::WebhookSettings;
use crate::hub::LiveSettings;
use crate::ops::cli::Command;
use crate::rate_limit::RateLimiter;

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

    /// Directory that holds the embedded database, and the attachments' bytes.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Keep the data in PostgreSQL instead of the embedded database (e.g.
    /// `postgres://chat@db.internal/chat`, or libpq's `host=/run/postgresql dbname=chat`).
    /// Connections are not encrypted: use a Unix socket or a trusted network.
    #[arg(long, env = "CHAT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// With `--database-url`: tell the other instances about new messages inside the
    /// committing transaction instead of right after it. Slower (PostgreSQL then holds a
    /// database-wide lock through each commit); for measuring the difference.
    #[arg(long, env = "CHAT_NOTIFY_IN_COMMIT")]
    pub notify_in_commit: bool,

    /// The server's own origin (e.g. `https://chat.example.com`): the address people open.
    /// Requests must name it (or a loopback name) in `Host`; WebSocket `Origin` and cross-site
    /// checks compare against it. Needed when `--addr` is not a loopback address; without it
    /// only `localhost`, `127.0.0.1` and `[::1]` at the listening port are answered.
    #[arg(long, env = "CHAT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Addresses of reverse proxies (comma-separated) whose `X-Forwarded-For` names the
    /// client. Without it, the client is the connection's peer address (behind a proxy, every
    /// client would then share the proxy's budget of wrong guesses).
    #[arg(long, env = "CHAT_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Vec<IpAddr>,

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

    /// A secret that makes a session an admin's when redeemed at `/admin` (or, sent as
    /// `Authorization: Bearer <token>`, authorizes admin endpoints). Without it, a one-time
    /// setup link is printed in the log at start until one is redeemed.
    #[arg(long, env = "CHAT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Messages per second one login may send (0 turns the limit off).
    #[arg(long, env = "CHAT_RATE_LIMIT", default_value_t = 10.0)]
    pub rate_limit: f64,

    /// Messages one login may send in a burst before the rate applies.
    #[arg(long, env = "CHAT_RATE_BURST", default_value_t = 30.0)]
    pub rate_burst: f64,

    /// Rooms one login, and one client address, may create per minute (a burst of as many,
    /// then one every 60/N seconds); joining a room is not creating it. 0 turns it off.
    #[arg(long, env = "CHAT_ROOM_RATE", default_value_t = 5.0)]
    pub room_rate: f64,

    /// Rooms one login may create in all (a new login starts again; the per-address rate
    /// still applies). 0 turns the cap off.
    #[arg(long, env = "CHAT_ROOMS_PER_LOGIN", default_value_t = 50)]
    pub rooms_per_login: usize,

    /// Names reserved for good (bots, and nicknames protected with a password) one client
    /// address may make per hour (a burst of as many). 0 turns it off.
    #[arg(long, env = "CHAT_BOT_RATE", default_value_t = 20.0)]
    pub bot_rate: f64,

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

    /// Seconds after someone's last tab closes before they leave "Here now".
    #[arg(long, env = "CHAT_LEAVE_DEBOUNCE", default_value_t = 5.0)]
    pub leave_debounce: f64,

    /// Seconds after which an instance sharing the database that stopped sending heartbeats
    /// (it died) no longer counts in "Here now".
    #[arg(long, env = "CHAT_INSTANCE_TIMEOUT", default_value_t = 20.0)]
    pub instance_timeout: f64,

    /// Post "joined"/"left" lines only while a room has at most this many people present.
    #[arg(long, env = "CHAT_ANNOUNCE_LIMIT", default_value_t = 50)]
    pub announce_limit: usize,

    /// Seconds after start without "joined" lines.
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

    /// Seconds a bot's webhook may take to answer one delivery attempt.
    #[arg(long, env = "CHAT_WEBHOOK_TIMEOUT", default_value_t = 10.0)]
    pub webhook_timeout: f64,

    /// Attempts per webhook delivery, the first one included.
    #[arg(long, env = "CHAT_WEBHOOK_ATTEMPTS", default_value_t = 5)]
    pub webhook_attempts: u32,

    /// Seconds before the first webhook retry; each later retry waits twice as long.
    #[arg(long, env = "CHAT_WEBHOOK_BACKOFF", default_value_t = 1.0)]
    pub webhook_backoff: f64,

    /// Webhook deliveries that may wait; past it new mentions are not delivered (and logged).
    #[arg(long, env = "CHAT_WEBHOOK_QUEUE", default_value_t = 1000)]
    pub webhook_queue: usize,

    /// Webhook deliveries one bot may have waiting; past it that bot's new mentions are not
    /// delivered (and logged), so one bot's backlog never crowds out the others'.
    #[arg(long, env = "CHAT_WEBHOOK_BOT_QUEUE", default_value_t = 100)]
    pub webhook_bot_queue: usize,

    /// Let bot webhooks reach loopback, private, link-local and other non-public addresses
    /// (the server's own network). Off, such URLs are refused when set and not delivered to.
    #[arg(long, env = "CHAT_ALLOW_PRIVATE_WEBHOOKS")]
    pub allow_private_webhooks: bool,

    /// Largest file one person may attach, in bytes, or with a unit: `25MiB`, `500KiB`,
    /// `1GiB` (K, M and G mean the same). Larger uploads get 413.
    #[arg(long, env = "CHAT_MAX_UPLOAD", default_value = "25MiB", value_parser = parse_size)]
    pub max_upload: u64,

    /// Seconds an upload may take (instead of `--request-timeout`, which stays the limit on
    /// how long it may stall without sending anything).
    #[arg(long, env = "CHAT_UPLOAD_TIMEOUT", default_value_t = 600.0)]
    pub upload_timeout: f64,

    /// Tests only: sessions last this long unused, instead of `session_days`.
    #[arg(skip)]
    pub session_lifetime_override: Option<Duration>,

    /// How often open sockets are checked for a session that expired.
    #[arg(skip = Duration::from_secs(60))]
    pub expiry_check_interval: Duration,

    /// How often expired sessions are deleted from the database.
    #[arg(skip = Duration::from_secs(3600))]
    pub session_sweep_interval: Duration,

    /// The window in which one client address may guess wrong [`WRONG_GUESSES`] times at the
    /// admin token, the setup link or the join code. A setting only so tests can shorten it.
    #[arg(skip = Duration::from_secs(60))]
    pub guess_window: Duration,
}

/// Wrong guesses at a secret one client address may make per [`Config::guess_window`].
pub const WRONG_GUESSES: u32 = 10;

impl Config {
    /// A configuration for tests: an ephemeral port on loopback and the given data directory.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            database_url: None,
            notify_in_commit: false,
            public_url: None,
            trusted_proxy: Vec::new(),
            secure_cookies: false,
            join_code: None,
            admin_token: None,
            log: "warn".into(),
            // Tests that flood a room turn it on themselves.
            rate_limit: 0.0,
            rate_burst: 30.0,
            // Tests make many rooms and bots from one address; those about it turn it on.
            room_rate: 0.0,
            rooms_per_login: 0,
            bot_rate: 0.0,
            session_days: 30,
            ping_interval: 30.0,
            resume_grace: 1.0,
            flush_interval: 0.1,
            typing_expiry: 3.0,
            leave_debounce: 0.5,
            instance_timeout: 20.0,
            announce_limit: 50,
            quiet_after_start: 0.0,
            shutdown_grace: 10.0,
            header_timeout: 10.0,
            request_timeout: 30.0,
            webhook_timeout: 5.0,
            webhook_attempts: 5,
            webhook_backoff: 0.05,
            webhook_queue: 1000,
            webhook_bot_queue: 100,
            allow_private_webhooks: false,
            max_upload: 25 * 1024 * 1024,
            upload_timeout: 600.0,
            session_lifetime_override: None,
            expiry_check_interval: Duration::from_secs(1),
            session_sweep_interval: Duration::from_secs(3600),
            guess_window: Duration::from_secs(60),
        }
    }

    pub fn live_settings(&self) -> LiveSettings {
        LiveSettings {
            flush_interval: seconds(self.flush_interval.max(0.01)),
            typing_expiry: seconds(self.typing_expiry),
            leave_debounce: seconds(self.leave_debounce),
            announce_limit: self.announce_limit,
            quiet_after_start: seconds(self.quiet_after_start),
            instance_timeout: seconds(self.instance_timeout.max(0.1)),
        }
    }

    pub fn webhook_settings(&self) -> WebhookSettings {
        WebhookSettings {
            timeout: seconds(self.webhook_timeout.max(0.01)),
            attempts: self.webhook_attempts.max(1),
            backoff: seconds(self.webhook_backoff),
            queue: self.webhook_queue.max(1),
            bot_queue: self.webhook_bot_queue.max(1),
            allow_private: self.allow_private_webhooks,
        }
    }

    /// The budget of wrong guesses per client address: [`WRONG_GUESSES`] per window, coming
    /// back one at a time.
    pub fn guess_limiter(&self) -> RateLimiter {
        let window = self.guess_window.as_secs_f64().max(0.001);
        let budget = f64::from(WRONG_GUESSES);
        RateLimiter::new(budget / window, budget)
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

    /// How long an upload may take: never less than any other request.
    pub fn upload_timeout(&self) -> Duration {
        seconds(self.upload_timeout.max(self.request_timeout).max(0.01))
    }
}

/// Seconds from a flag; negative or non-finite values count as zero.
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::ZERO)
}

/// A size in bytes, optionally with a binary unit: `1048576`, `512KiB`, `25MiB`, `1G`.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 25MiB"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}: use KiB, MiB or GiB")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("25MiB"), Ok(25 * 1024 * 1024));
        assert_eq!(parse_size("512 KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
