//! The WebSocket engine.
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

mod composer;
mod connection;
mod handshake;
mod outbox;
mod pieces;
mod writer;

pub use connection::Connection;
pub use handshake::{MAX_FRAME_BYTES, Upgrade};

const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_RESTART: u16 = 1012;
const CLOSE_TRY_AGAIN: u16 = 1013;
