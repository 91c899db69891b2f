//! The small fragments swapped in by id: composer errors, mention suggestions, presence,
//! typing, topic, the room's name and archived state.

use askama::Template;

/// The composer error fragment: sent alone on a socket, or shown in the no-JS page.
#[derive(Template)]
#[template(path = "_composer_error.html")]
pub struct ComposerError {
    pub code: &'static str,
    pub text: String,
    pub client_id: Option<String>,
}

impl ComposerError {
    pub fn new(code: &'static str, text: impl Into<String>) -> Self {
        ComposerError {
            code,
            text: text.into(),
            client_id: None,
        }
    }

    /// What the composer says when a room is archived (over HTTP and on the socket).
    pub fn archived() -> Self {
        ComposerError::new(
            "archived",
            "This room is archived: nobody can post in it. Its history stays readable.",
        )
    }

    /// The empty `#composer-error` that clears a shown error.
    pub fn cleared() -> String {
        r#"<div id="composer-error" role="alert"></div>"#.to_owned()
    }
}

/// People the composer offers while the viewer types `@…`.
#[derive(Template)]
#[template(path = "_mention_suggestions.html")]
pub struct MentionSuggestions {
    pub names: Vec<String>,
}

/// The people present, as a fragment that replaces `#presence`.
#[derive(Template)]
#[template(path = "_presence.html")]
pub struct HereNow<'a> {
    pub names: &'a [String],
}

impl HereNow<'_> {
    /// Long lists are cut, so a room of thousands doesn't push a huge fragment.
    pub const SHOWN: usize = 100;
}

pub fn presence_fragment(names: &[String]) -> String {
    HereNow { names }.render().unwrap_or_default()
}

#[derive(Template)]
#[template(path = "_typing.html")]
struct Typing<'a> {
    names: &'a [String],
}

pub fn typing_fragment(names: &[String]) -> String {
    Typing { names }.render().unwrap_or_default()
}

#[derive(Template)]
#[template(path = "_topic.html")]
struct Topic<'a> {
    topic: &'a str,
}

pub fn topic_fragment(topic: &str) -> String {
    Topic { topic }.render().unwrap_or_default()
}

/// The room's name in its header, replaced by id when an admin renames the room.
#[derive(Template)]
#[template(path = "_room_name.html")]
pub struct RoomTitle<'a> {
    pub name: &'a str,
}

pub fn room_title_fragment(name: &str) -> String {
    RoomTitle { name }.render().unwrap_or_default()
}

/// The notice that stands in for the composer while a room is archived (CSS hides the
/// composer after it), replaced by id when an admin archives or reopens the room.
#[derive(Template)]
#[template(path = "_room_state.html")]
pub struct RoomState {
    pub archived: bool,
}

pub fn room_state_fragment(archived: bool) -> String {
    RoomState { archived }.render().unwrap_or_default()
}
