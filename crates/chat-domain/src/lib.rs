//! Parsed domain types. Input becomes one of these at the edge; only parsed values go inward.
//!
//! This crate depends on no storage or web framework, so its parsers and the message renderer
//! build in seconds for unit tests and for the fuzzers in `fuzz/`.

mod body;
mod frame;
#[cfg(any(test, feature = "invariants"))]
pub mod invariants;
mod nickname;
mod room;
mod search;

pub use body::{
    BodyError, MessageBody, RenderedBody, is_emoji_only, render_body, render_body_and_mentions,
};
pub use frame::{ClientFrame, ClientId, FrameError};
pub use nickname::{Nickname, NicknameError};
pub use room::{RoomName, RoomNameError, Slug};
pub use search::{QueryError, SearchQuery, Snippet, Word, excerpt, index_terms, words};
