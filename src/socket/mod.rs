//! The WebSocket engine: everything a socket does once a handler has let it in.
//!
//! Each socket has two tasks. The connection task reads the page's frames. The writer task owns
//! the sending half and takes the room's live events and the sidebar updates straight from
//! their broadcast channels, so a delivery wakes one task. What the connection task has to say
//! (replies, errors, pings, the resume point, the close) reaches the writer through an
//! `Outbox`, which holds no memory while it is empty.
//!
//! The handshake is done here ([`Upgrade`]) rather than with axum's `WebSocketUpgrade`, so the
//! writer can use tungstenite's frames: a long fragment goes out in pieces, because tungstenite
//! keeps its write buffer at the largest size it ever held, for every socket, for good.
//!
//! A handler (`routes::ws`) checks who asks and for which room, fills a [`Connection`] with
//! what the socket needs (the hub, the room, the viewer and their socket guard, the rate
//! limiter, the timings), answers with the 101 from [`Upgrade::accept`] and spawns
//! [`Connection::run`]. The engine takes nothing else from the application.
//!
//! - `handshake.rs`: the [`Upgrade`] extractor, the 101, and the socket's size limits;
//! - `connection.rs`: the connection task, which reads the page's frames and ends the socket;
//! - `outbox.rs`: the connection task's orders to its writer;
//! - `writer.rs`: the writer task and what it waits on (the room's feed, the sidebar, the outbox);
//! - `pieces.rs`: a long text as a text frame and continuation frames;
//! - `composer.rs`: the error fragments the socket sends to the page's composer.

mod composer;
mod connection;
mod handshake;
mod outbox;
mod pieces;
mod writer;

pub use connection::Connection;
pub use handshake::{MAX_FRAME_BYTES, Upgrade};

// The close codes the engine sends. htmx-ext-ws reconnects by itself after 1012 and 1013,
// not after 1008 or 1009 (`DESIGN.md`).
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_RESTART: u16 = 1012;
const CLOSE_TRY_AGAIN: u16 = 1013;
