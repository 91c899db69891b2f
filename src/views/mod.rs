//! Askama templates and the one render helper. Pages and live fragments share partials, so
//! what a reload shows and what the socket pushes never drift apart.
//!
//! - [`page`]: the chrome every page carries, and the full pages.
//! - [`message`]: the message partial, rendered once per message, and history pages.
//! - [`sidebar`]: the room list, grouped by recency in the viewer's time zone.
//! - [`fragments`]: the small live fragments swapped in by id (presence, typing, topic…).
//! - [`datetime`]: how times are written into markup.
//! - [`pieces`]: a response body of shared pieces, for the room page's newest messages.

mod datetime;
mod fragments;
mod message;
mod page;
mod pieces;
mod sidebar;

use askama::Template;
use axum::response::Html;

/// Renders a template; handlers turn a failure into a logged 500 (`AppError::Render`) with `?`.
pub fn render<T: Template>(template: &T) -> askama::Result<Html<String>> {
    render_sized(template, T::SIZE_HINT)
}

/// [`render`] into a buffer of `capacity` bytes: a page whose size is known is written once
/// rather than copied through doubling buffers.
pub fn render_sized<T: Template>(template: &T, capacity: usize) -> askama::Result<Html<String>> {
    let mut html = String::with_capacity(capacity);
    template.render_into(&mut html)?;
    Ok(Html(html))
}

pub use datetime::*;
pub use fragments::*;
pub use message::*;
pub use page::*;
pub use sidebar::*;
