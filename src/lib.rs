//! A lean, self-hosted real-time web chat: server-rendered HTML, live over htmx WebSockets,
//! one binary with an embedded database.
//!
//! # Layout
//! Read from the bottom up: each floor imports only from the floors below it.
//!
//! **Application** (the only modules that see all of it)
//! - [`startup`]: `Application::build` / `run_until_stopped`, the serve loop, ordered shutdown.
//! - [`state`]: `AppState`, one `Arc` of the services every handler shares.
//! - [`routes`]: the router, joined from each area's own `router()`, and its middleware.
//!   [`routes::extract`] holds what handlers share: the `PageContext` (viewer, time zone,
//!   nonce, admin) every page is built from, the `Admin` extractor, room lookups, the
//!   client's address and its budget of wrong guesses. [`routes::next`] reads a login's
//!   `next` as a browser would; [`routes::nickname`] protects a nickname with a password.
//! - [`upkeep`]: background tasks that end expired sessions and their sockets.
//! - [`config`]: flags with `CHAT_*` environment fallbacks.
//!
//! **Services** (never import `state`, `routes` or `startup`)
//! - [`socket`]: the WebSocket engine: handshake, the connection (reader) task, the outbox,
//!   the writer, long frames in pieces. `routes::ws` only checks and upgrades.
//! - [`hub`]: rooms and their recent windows ([`hub::Room`]), the committer that persists
//!   each batch before anyone sees it, the listener that shows what other instances on the
//!   same PostgreSQL stored, submission, history and catch-up, presence, the sidebar's live
//!   updates, per-login sockets, read marks.
//! - [`bots`]: bot tokens, the in-memory registry, outgoing mention webhooks, and which
//!   addresses they may reach.
//! - [`admin`]: admin rights from a secret (`--admin-token` or a one-time setup link).
//! - [`ops`]: the backup archive, exports and the `backup`/`restore`/`export` subcommands.
//! - [`error`]: `AppError`, how every failure becomes a response.
//! - [`views`]: askama templates: pages, the message partial, the sidebar, live fragments.
//! - [`store`]: the narrow `Storage` trait, PoloDB behind it (or PostgreSQL, with
//!   `--database-url`), the search index and its indexer, the session store, and the
//!   upgrades of data written by older builds.
//! - [`files`]: uploaded files by content hash, sniffing, thumbnails. [`assets`]: embedded
//!   static files. [`metrics`]: what `/metrics` reports. [`auth`]: the viewer extractor.
//! - [`identity`], [`passwords`], [`devices`], [`security`], [`rate_limit`], [`clock`],
//!   [`periodic`]: small leaves (who is logged in and their login's public handle, nickname
//!   passwords, device links, secrets, origins and accepted hosts, the limiters, store time,
//!   repeating work).
//! - [`domain`]: parsed input types (`Nickname`, `RoomName`/`Slug`, `MessageBody`, frames)
//!   and the message renderer: the `chat-domain` crate (`crates/chat-domain`), re-exported.
//!
//! # Where a message goes
//! Parsed from a socket frame in [`socket`] (or a form in `routes::rooms`, or the bot API in
//! `routes::api`) into a `MessageBody`; queued by `hub::Hub::submit`; stored in a batch by
//! the committer (`hub/committer.rs`) through [`store`], which gives it its id; rendered
//! once by `views::render_message`; fanned out as the same bytes by the room's broadcast
//! channel to every socket's writer (`socket/writer.rs`). On PostgreSQL the other instances
//! hear of the commit (NOTIFY), read the message back by id and fan it out the same way
//! (`hub/listener.rs`).

pub mod admin;
pub mod assets;
pub mod auth;
pub mod bots;
pub mod claim_lock;
pub mod clock;
pub mod config;
pub mod devices;
pub mod error;
pub mod files;
pub mod hub;
pub mod identity;
pub mod metrics;
pub mod ops;
pub mod passwords;
pub mod periodic;
pub mod rate_limit;
pub mod routes;
pub mod security;
pub mod socket;
pub mod startup;
pub mod state;
pub mod store;
pub mod upkeep;
pub mod views;

/// The parsers live in their own crate so they can be fuzzed without building RocksDB.
pub use chat_domain as domain;
pub use config::Config;
pub use startup::Application;
