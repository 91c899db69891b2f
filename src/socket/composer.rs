//! The composer's error line, as the socket sends it.

use crate::domain::FrameError;
use crate::views::ComposerError;

pub(super) fn render_error(error: &ComposerError) -> String {
    askama::Template::render(error).unwrap_or_else(|_| ComposerError::cleared())
}

pub(super) fn frame_error(error: FrameError, client_id: Option<String>) -> String {
    let mut fragment = ComposerError::new(error.code(), error.to_string());
    fragment.client_id = client_id;
    render_error(&fragment)
}

pub(super) fn frame_error_store() -> String {
    render_error(&ComposerError::new(
        "store_failed",
        "Recent messages could not be loaded. Reload the page to try again.",
    ))
}
