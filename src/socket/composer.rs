//! The composer's error line, as the socket sends it.

use crate::domain::{ClientId, FrameError};
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

/// The client id of a send refused before it could be read (a body too long, say), so the
/// refusal names it and the page gives its text back.
pub(super) fn refused_client_id(frame: &str) -> Option<String> {
    let frame: serde_json::Value = serde_json::from_str(frame).ok()?;
    let id = ClientId::parse(frame.get("client_id")?.as_str()?)?;
    Some(id.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_send_keeps_its_client_id() {
        let frame = format!(r#"{{"body":"{}","client_id":"c-1"}}"#, "a".repeat(4001));
        assert_eq!(refused_client_id(&frame).as_deref(), Some("c-1"));
        assert_eq!(refused_client_id(r#"["hi", "c-1"]"#), None);
        assert_eq!(refused_client_id(r#"{"client_id":"<bad>"}"#), None);
        assert_eq!(refused_client_id("not json"), None);
    }
}
