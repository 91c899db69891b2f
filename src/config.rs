//! Command-line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// A lean, self-hosted real-time web chat.
///
/// Every flag falls back to an environment variable named `CHAT_` + the flag in upper case.
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

    /// Seconds between WebSocket pings; a peer that misses two pongs is dropped.
    #[arg(long, env = "CHAT_PING_INTERVAL", default_value_t = 30.0)]
    pub ping_interval: f64,

    /// Seconds a connection waits for the page's `resume_after` before it goes live anyway.
    #[arg(long, env = "CHAT_RESUME_GRACE", default_value_t = 1.0)]
    pub resume_grace: f64,

    /// Seconds that graceful shutdown may take before the process exits regardless.
    #[arg(long, env = "CHAT_SHUTDOWN_GRACE", default_value_t = 10.0)]
    pub shutdown_grace: f64,
}

impl Config {
    /// A configuration for tests: an ephemeral port on loopback and the given data directory.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            public_url: None,
            secure_cookies: false,
            log: "warn".into(),
            ping_interval: 30.0,
            resume_grace: 1.0,
            shutdown_grace: 10.0,
        }
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs_f64(self.ping_interval.max(0.01))
    }

    pub fn resume_grace(&self) -> Duration {
        Duration::from_secs_f64(self.resume_grace.max(0.0))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs_f64(self.shutdown_grace.max(0.0))
    }
}
