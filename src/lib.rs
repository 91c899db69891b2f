//! A lean, self-hosted real-time web chat: server-rendered HTML, live over htmx WebSockets,
//! one binary with an embedded database.
//!
//! # Layout
//! - [`config`]: flags with `CHAT_*` environment fallbacks.
//! - [`startup`]: `Application::build` / `run_until_stopped`, the router, ordered shutdown.
//! - [`domain`]: parsed input types (`Nickname`, `RoomName`/`Slug`, `MessageBody`, frames)
//!   and the message renderer; the `chat-domain` crate (`crates/chat-domain`), re-exported.
//! - [`store`]: the narrow storage interface, PoloDB behind it (with the search index), and
//!   the session store.
//! - [`files`]: uploaded files on disk by content hash, type sniffing and thumbnails.
//! - [`hub`]: rooms, their recent windows, the group-committing writer, and fan-out of
//!   fragments rendered once.
//! - [`admin`]: admin rights from a secret (`--admin-token` or a one-time setup link) and
//!   the [`admin::Admin`] extractor; moderation handlers are in `routes::admin`.
//! - [`bots`]: bot tokens, the in-memory registry, and outgoing mention webhooks.
//! - [`routes`], [`auth`]: thin handlers; [`views`]: askama templates; [`error`]: `AppError`.
//! - [`socket`]: the WebSocket engine: handshake, each socket's reader and writer, the outbox.
//! - [`metrics`]: what `/metrics` reports; [`ops`]: the metrics, backup and export
//!   endpoints, the backup archive, and the `backup`/`restore`/`export` subcommands.
//! - [`security`]: same-origin checks and headers; [`rate_limit`]: per-login message limit;
//!   [`assets`]: embedded static files.

pub mod admin;
pub mod assets;
pub mod auth;
pub mod bots;
pub mod config;
pub mod error;
pub mod files;
pub mod hub;
pub mod metrics;
pub mod ops;
pub mod periodic;
pub mod rate_limit;
pub mod routes;
pub mod security;
pub mod socket;
pub mod startup;
pub mod store;
pub mod views;

/// The parsers live in their own crate so they can be fuzzed without building RocksDB.
pub use chat_domain as domain;
pub use config::Config;
pub use startup::Application;
