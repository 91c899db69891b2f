//! Askama templates and the one render helper. Pages and live fragments share partials, so
//! what a reload shows and what the socket pushes never drift apart.

use std::sync::Arc;

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::auth::CurrentUser;
use crate::domain::{Nickname, Slug, is_emoji_only, render_body_and_mentions};
use crate::error::AppError;
use crate::hub::{RenderedMessage, RoomSummary};
use crate::store::{MessageKind, MessageRecord, Reaction, ReaderRecord, ReplyPreview};
use crate::{assets, files};

/// The emoji anyone can react with: a small set keeps the picker one row and the markup short.
pub const REACTIONS: [&str; 6] = ["👍", "❤️", "😂", "🎉", "😮", "🙏"];

/// Renders a template, turning a template failure into a logged 500 rather than a panic.
pub fn render<T: Template>(template: &T) -> Result<Html<String>, AppError> {
    render_sized(template, T::SIZE_HINT)
}

/// [`render`] into a buffer of `capacity` bytes: a page whose size is known is written once
/// rather than copied through doubling buffers.
pub fn render_sized<T: Template>(template: &T, capacity: usize) -> Result<Html<String>, AppError> {
    let mut html = String::with_capacity(capacity);
    template.render_into(&mut html)?;
    Ok(Html(html))
}

/// What every full page carries: title, asset URLs, the viewer and the CSP nonce.
pub struct Chrome {
    pub title: String,
    pub viewer: Option<String>,
    /// The viewer's mention key, empty without a viewer.
    viewer_key: String,
    pub nonce: String,
    pub assets: &'static assets::Urls,
    /// The viewer's session is an admin's: the page shows admin controls (a class on the
    /// body, so shared message markup needs no per-viewer rendering). The server checks
    /// every admin action regardless.
    pub admin: bool,
}

impl Chrome {
    pub fn new(title: impl Into<String>, viewer: Option<&CurrentUser>, nonce: &str) -> Chrome {
        Chrome {
            title: title.into(),
            viewer: viewer.map(|user| user.nickname.clone()),
            viewer_key: viewer
                .map(|user| user.mention_key().to_owned())
                .unwrap_or_default(),
            nonce: nonce.to_owned(),
            assets: assets::urls(),
            admin: false,
        }
    }

    /// The same chrome, for an admin's page when `admin` is true.
    pub fn for_admin(mut self, admin: bool) -> Chrome {
        self.admin = admin;
        self
    }

    /// How mentions name the viewer, for the CSS that highlights them.
    pub fn viewer_mention_key(&self) -> &str {
        &self.viewer_key
    }

    /// The viewer's nickname inside a CSS string.
    pub fn viewer_css(&self) -> String {
        css_string(self.viewer.as_deref().unwrap_or_default())
    }

    /// The viewer's mention key inside a CSS string.
    pub fn viewer_mention_css(&self) -> String {
        css_string(self.viewer_mention_key())
    }
}

/// Text for inside a double-quoted CSS string: nicknames hold no quotes or backslashes, but
/// escaping keeps that from being something the stylesheet relies on.
fn css_string(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '"' | '\\' | '<' | '>' => out.push_str(&format!("\\{:x} ", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub page: Chrome,
    pub nickname: String,
    /// Whether the form asks for the join code (set, and not yet given by an invite link).
    pub ask_code: bool,
    pub error: Option<String>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "welcome.html")]
pub struct WelcomePage {
    pub page: Chrome,
    pub sidebar: Sidebar,
    pub name: String,
    pub message: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "room.html")]
pub struct RoomPage {
    pub page: Chrome,
    pub sidebar: Sidebar,
    pub slug: Slug,
    /// The room's name, or in a direct conversation the other person's.
    pub name: String,
    pub direct: bool,
    pub topic: String,
    pub here: Vec<String>,
    pub muted: bool,
    /// Read-only: a notice instead of the composer.
    pub archived: bool,
    pub history: History,
    /// The room revision the history was rendered at (see `Room::revision`).
    pub revision: u64,
    /// Whether this page shows the newest messages (and so goes live).
    pub live: bool,
    /// The message a permalink opened the page at.
    pub focus: Option<u64>,
    pub draft: String,
    pub error: Option<ComposerError>,
    /// `--max-upload`, so the page can refuse a file too large before sending it.
    pub max_upload: u64,
}

/// The room's sidebar and header, besides the template's static text, fit in this.
const ROOM_PAGE_CHROME: usize = 8 * 1024;

impl IntoResponse for RoomPage {
    fn into_response(self) -> Response {
        // The messages are most of the page.
        let capacity = Self::SIZE_HINT + ROOM_PAGE_CHROME + self.history.html_len();
        render_sized(&self, capacity).into_response()
    }
}

impl RoomPage {
    /// The page as an admin sees it: with the admin controls.
    pub fn for_admin(mut self, admin: bool) -> RoomPage {
        self.page.admin = admin;
        self
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub page: Chrome,
    pub heading: String,
    pub text: String,
}

/// A page of messages plus the link to the page before it.
#[derive(Template)]
#[template(path = "_history.html")]
pub struct History {
    pub slug: Slug,
    pub messages: Vec<Arc<RenderedMessage>>,
    /// The first message the viewer has not seen: the "new since your last visit" divider
    /// goes before it.
    pub first_unread: Option<u64>,
}

impl History {
    /// The bytes of its messages' markup.
    pub fn html_len(&self) -> usize {
        self.messages.iter().map(|m| m.html.len()).sum()
    }

    /// The id to ask for older messages before, if any older ones exist.
    pub fn older_before(&self) -> Option<u64> {
        self.messages.first().map(|m| m.id).filter(|&id| id > 1)
    }

    fn unread_starts_at(&self, message: &RenderedMessage) -> bool {
        self.first_unread == Some(message.id)
    }
}

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

#[derive(Template)]
#[template(path = "_message.html")]
struct MessageView<'a> {
    slug: &'a str,
    id: i64,
    kind: &'static str,
    author: &'a str,
    body_html: String,
    /// Mention keys, space-separated, for the viewer's CSS (`[data-mentions~=…]`).
    mentions: String,
    emoji_only: bool,
    datetime: String,
    time_text: String,
    client_id: Option<&'a str>,
    edited: Option<(String, String)>,
    deleted: bool,
    reactions: &'a [Reaction],
    reply_to: Option<&'a ReplyPreview>,
    /// Posted by a bot: shown with a badge, so a bot can't pass for a person.
    bot: bool,
    attachment: Option<AttachmentView<'a>>,
}

/// An attachment as a message shows it: an image inline (its thumbnail, linking to the
/// whole), or a card to download anything else.
struct AttachmentView<'a> {
    name: &'a str,
    size: String,
    /// The image's own width × height, for its caption.
    dimensions: Option<String>,
    /// The size it is shown at, set on the `<img>` so nothing jumps as it loads.
    shown: Option<(u32, u32)>,
    /// Which of the message's paths the `<img>` shows: `thumbnail`, or `file` for a GIF, so
    /// that it moves.
    inline_path: &'static str,
}

/// A byte count as people read it: `812 B`, `14 KB`, `2.4 MB` (binary multiples).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 && value.fract() >= 0.05 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// Renders one message with `_message.html`: the only place message markup comes from.
/// Returns the markup and the mention keys of the people it mentions.
pub fn render_message(record: &MessageRecord) -> (String, Vec<String>) {
    let at = from_millis(record.created_at);
    let body = render_body_and_mentions(&record.body);
    let view = MessageView {
        slug: record.room.as_str(),
        id: record.id,
        kind: record.kind.as_str(),
        author: match record.kind {
            MessageKind::User => &record.author,
            MessageKind::System => "",
        },
        body_html: body.html,
        mentions: body.mentions.join(" "),
        emoji_only: is_emoji_only(&record.body),
        datetime: rfc3339(at),
        time_text: utc_time_text(at),
        client_id: record.client_id.as_deref(),
        edited: record
            .edited_at
            .map(from_millis)
            .map(|at| (rfc3339(at), utc_time_text(at))),
        deleted: record.deleted,
        reactions: &record.reactions,
        reply_to: record.reply_to.as_ref(),
        bot: record.bot,
        attachment: record.attachment.as_ref().map(|file| AttachmentView {
            name: &file.name,
            size: human_size(file.size),
            dimensions: file
                .image
                .as_ref()
                .map(|image| format!("{} × {}", image.width, image.height)),
            shown: file.image.as_ref().map(|image| {
                files::fit_within(
                    image.width,
                    image.height,
                    files::SHOWN_WIDTH,
                    files::SHOWN_HEIGHT,
                )
            }),
            inline_path: match file.media_type.as_str() {
                "image/gif" => "file",
                _ => "thumbnail",
            },
        }),
    };
    let html = view.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, id = record.id, "message render failed");
        format!(
            r#"<article id="msg-{}" class="msg" data-kind="system" data-author=""></article>"#,
            record.id
        )
    });
    (html, body.mentions)
}

pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Shown until the page's script puts the time in the reader's zone.
fn utc_time_text(at: OffsetDateTime) -> String {
    at.format(format_description!("[hour]:[minute] UTC"))
        .unwrap_or_default()
}

/// People the composer offers while the viewer types `@…`.
#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1 KB");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(human_size(25 * 1024 * 1024), "25 MB");
        assert_eq!(human_size(2_400_000), "2.3 MB");
    }
}

#[derive(Template)]
#[template(path = "_mention_suggestions.html")]
pub struct MentionSuggestions {
    pub names: Vec<String>,
}

/// The form that edits a message in place of its body (`hx-get` of the edit button).
#[derive(Template)]
#[template(path = "_message_edit.html")]
pub struct MessageEdit<'a> {
    pub slug: &'a str,
    pub id: i64,
    pub author: &'a str,
    pub body: &'a str,
}

/// Messages appended at the end of `#messages`: the live and catch-up frame.
pub fn append_fragment<'a>(messages: impl IntoIterator<Item = &'a RenderedMessage>) -> String {
    let mut frame = String::from(r#"<div id="messages" hx-swap-oob="beforeend">"#);
    for m in messages {
        frame.push_str(&m.html);
    }
    frame.push_str("</div>");
    frame
}

/// The room revision a page has seen, sent back when it reconnects (see `Room::revision`).
pub fn revision_marker(revision: u64) -> String {
    format!(r#"<span id="room-revision" data-revision="{revision}" hidden></span>"#)
}

/// Replaces the whole list: sent when a client missed more than a catch-up replays.
pub fn reset_fragment(history: &History) -> Result<String, askama::Error> {
    Ok(format!(
        r#"<div id="messages" hx-swap-oob="innerHTML">{}</div>"#,
        history.render()?
    ))
}

/// The sidebar's room list, grouped by how recently each room was active in the viewer's
/// time zone. Pages mark it for their viewer; the live copy is the same for everyone.
#[derive(Template)]
#[template(path = "_room_list.html")]
pub struct Sidebar {
    pub groups: Vec<SidebarGroup>,
    /// The viewer's direct conversations, named after the other person. Never in the shared
    /// live copy: the page keeps them in a list of their own.
    pub direct: Vec<SidebarRoom>,
}

pub struct SidebarGroup {
    pub label: &'static str,
    pub rooms: Vec<SidebarRoom>,
}

pub struct SidebarRoom {
    pub slug: Slug,
    pub name: String,
    pub last_id: u64,
    pub current: bool,
    /// The viewer's newest seen id; `None` in the shared live copy.
    pub read: Option<u64>,
    pub muted: bool,
    /// `key:id` of the newest message mentioning each person, for the page's script to
    /// mark rooms live; the same in every copy.
    pub mention_marks: String,
    /// The newest message mentioning the viewer (0 for none, or in the shared copy).
    pub viewer_mentioned_at: u64,
}

impl SidebarRoom {
    pub fn unread(&self) -> u64 {
        match self.read {
            Some(read) if !self.current => self.last_id.saturating_sub(read),
            _ => 0,
        }
    }

    /// Whether an unread message mentions the viewer.
    pub fn mentioned(&self) -> bool {
        self.unread() > 0
            && self
                .read
                .is_some_and(|read| self.viewer_mentioned_at > read)
    }
}

/// Which room a page shows, and who is looking and what they have read.
pub struct SidebarViewer<'a> {
    pub current: Option<&'a Slug>,
    pub reader: &'a ReaderRecord,
    pub mention_key: &'a str,
}

const GROUPS: [&str; 6] = [
    "Today",
    "Yesterday",
    "Previous 7 days",
    "Previous 30 days",
    "Older",
    "Archived",
];
/// Archived rooms are listed last, whatever their activity.
const ARCHIVED_GROUP: usize = 5;

impl Sidebar {
    /// `rooms` come most recently active first; `now` is in the viewer's offset.
    pub fn new(
        rooms: &[RoomSummary],
        now: OffsetDateTime,
        viewer: Option<SidebarViewer<'_>>,
    ) -> Sidebar {
        let today = now.date();
        let mut groups: Vec<SidebarGroup> = GROUPS
            .iter()
            .map(|label| SidebarGroup {
                label,
                rooms: Vec::new(),
            })
            .collect();
        let mut direct = Vec::new();
        for room in rooms {
            let direct_with = room.slug.direct_members().map(|(a, b)| {
                let me = viewer.as_ref().map_or("", |v| v.mention_key);
                (a == me || b == me, direct_partner(&room.name, me))
            });
            if let Some((mine, _)) = direct_with
                && !mine
            {
                continue;
            }
            let active = from_millis(room.last_activity)
                .to_offset(now.offset())
                .date();
            let group = match (today - active).whole_days() {
                _ if room.archived => ARCHIVED_GROUP,
                ..=0 => 0,
                1 => 1,
                2..=7 => 2,
                8..=30 => 3,
                _ => 4,
            };
            let slug = room.slug.as_str();
            let entry = SidebarRoom {
                slug: room.slug.clone(),
                name: match direct_with {
                    Some((_, Some(other))) => other.to_owned(),
                    _ => room.name.clone(),
                },
                last_id: room.last_id,
                current: viewer.as_ref().and_then(|v| v.current) == Some(&room.slug),
                read: viewer
                    .as_ref()
                    .map(|v| v.reader.last_read.get(slug).copied().unwrap_or(0).max(0) as u64),
                muted: viewer
                    .as_ref()
                    .is_some_and(|v| v.reader.muted.iter().any(|m| m == slug)),
                mention_marks: room
                    .mentions
                    .iter()
                    .map(|mark| format!("{}:{}", mark.key, mark.id))
                    .collect::<Vec<_>>()
                    .join(" "),
                viewer_mentioned_at: viewer
                    .as_ref()
                    .and_then(|v| room.mentions.iter().find(|m| m.key == v.mention_key))
                    .map_or(0, |mark| mark.id.max(0) as u64),
            };
            match direct_with {
                Some(_) => direct.push(entry),
                None => groups[group].rooms.push(entry),
            }
        }
        groups.retain(|g| !g.rooms.is_empty());
        Sidebar { groups, direct }
    }

    /// The `#room-list` fragment, which replaces the list by id.
    pub fn render_list(&self) -> String {
        self.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "sidebar render failed");
            String::new()
        })
    }

    /// The `#dm-list` fragment: the viewer's direct conversations (hidden while there are
    /// none, so a live copy has something to replace).
    pub fn direct_list(&self) -> String {
        DirectList {
            rooms: &self.direct,
        }
        .render()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "direct list render failed");
            String::new()
        })
    }
}

#[derive(Template)]
#[template(path = "_direct_list.html")]
struct DirectList<'a> {
    rooms: &'a [SidebarRoom],
}

/// In a direct conversation named "alice & bob", the one who isn't `viewer_key`.
pub fn direct_partner<'a>(room_name: &'a str, viewer_key: &str) -> Option<&'a str> {
    room_name
        .split(" & ")
        .find(|name| Nickname::parse(name).map(|n| n.mention_key()).as_deref() != Ok(viewer_key))
}

pub(crate) fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The people present, as a fragment that replaces `#presence`.
#[derive(Template)]
#[template(path = "_presence.html")]
pub struct Presence<'a> {
    pub names: &'a [String],
}

impl Presence<'_> {
    /// Long lists are cut, so a room of thousands doesn't push a huge fragment.
    pub const SHOWN: usize = 100;
}

pub fn presence_fragment(names: &[String]) -> String {
    Presence { names }.render().unwrap_or_default()
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
