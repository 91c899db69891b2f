//! The message partial, the only place message markup comes from, and pages of history.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::response::Html;

use super::{render_sized, rfc3339, utc_time_text};
use crate::clock::from_millis;
use crate::domain::{RenderedBody, Slug, is_emoji_only, render_body_and_mentions};
use crate::files;
use crate::store::{MessageKind, MessageRecord, Reaction, ReplyPreview};

/// The emoji anyone can react with: a small set keeps the picker one row and the markup short.
pub const REACTIONS: [&str; 6] = ["👍", "❤️", "😂", "🎉", "😮", "🙏"];

/// One message, rendered once with `_message.html`.
#[derive(Debug)]
pub struct RenderedMessage {
    pub id: u64,
    /// Who wrote it; empty for system lines. Offered as `@mention` suggestions.
    pub author: String,
    pub html: String,
    /// Mention keys of the people it mentions.
    pub mentions: Vec<String>,
    /// The room revision of its last change (edit, deletion, reaction), 0 if none.
    pub revision: u64,
    /// The message it answers, whose changes its quote follows.
    pub reply_to: Option<u64>,
}

impl RenderedMessage {
    /// Whether it counts as unread: a person's or a bot's message; system lines have no
    /// author.
    pub fn counts(&self) -> bool {
        !self.author.is_empty()
    }
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
    pub fn new(
        slug: Slug,
        messages: Vec<Arc<RenderedMessage>>,
        first_unread: Option<u64>,
    ) -> History {
        History {
            slug,
            messages,
            first_unread,
        }
    }

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

/// A room's newest page of messages as shared bytes (see `Room::newest_page_markup`), without the
/// "new since your last visit" divider: what every viewer with nothing unread there is sent.
#[derive(Clone)]
pub struct NewestPage {
    pub markup: Bytes,
    /// The ids of its oldest and newest message, if it has any: a room's ids are dense, so
    /// every id between them is on the page.
    ids: Option<(u64, u64)>,
}

impl NewestPage {
    pub fn of(history: &History) -> askama::Result<NewestPage> {
        let Html(markup) = render_sized(history, history.html_len() + 512)?;
        Ok(NewestPage {
            markup: Bytes::from(markup),
            ids: history
                .messages
                .first()
                .zip(history.messages.last())
                .map(|(first, last)| (first.id, last.id)),
        })
    }
}

/// What a room page shows of the history: rendered for this page, or the room's newest page.
pub enum PageHistory {
    Rendered(History),
    Newest(NewestPage),
}

/// Where a room page's template writes the newest page's shared bytes (see
/// `RoomPage::to_response`). Text in the page after it is escaped, so it can't hold one.
pub const NEWEST_PAGE_MARK: &str = "<!--newest-page-->";

impl PageHistory {
    /// Whether the message with this id is on the page.
    pub fn shows(&self, id: u64) -> bool {
        match self {
            PageHistory::Rendered(history) => history.messages.iter().any(|m| m.id == id),
            PageHistory::Newest(page) => page
                .ids
                .is_some_and(|(first, last)| (first..=last).contains(&id)),
        }
    }

    /// The bytes of its messages' markup that the page's template writes itself.
    pub fn rendered_len(&self) -> usize {
        match self {
            PageHistory::Rendered(history) => history.html_len(),
            PageHistory::Newest(_) => 0,
        }
    }
}

impl std::fmt::Display for PageHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageHistory::Rendered(history) => history.render_into(f).map_err(|_| std::fmt::Error),
            PageHistory::Newest(_) => f.write_str(NEWEST_PAGE_MARK),
        }
    }
}

#[derive(Template)]
#[template(path = "_message.html")]
struct MessageView<'a> {
    slug: &'a str,
    id: i64,
    kind: &'static str,
    author: &'a str,
    /// The author's login handle: what "own", grouping and edit rights key on.
    login: &'a str,
    body_html: String,
    /// Login handles of the people it mentions, space-separated, for the viewer's CSS
    /// (`[data-mentions~=…]`).
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
    render_message_with(record, render_body_and_mentions(&record.body))
}

/// [`render_message`] with its body rendered already (`render_body_and_mentions` of the
/// record's body): the committer needs the mentions before the store gives the id.
pub fn render_message_with(record: &MessageRecord, body: RenderedBody) -> (String, Vec<String>) {
    let at = from_millis(record.created_at);
    let view = MessageView {
        slug: record.room.as_str(),
        id: record.id,
        kind: record.kind.as_str(),
        author: match record.kind {
            MessageKind::User => &record.author,
            MessageKind::System => "",
        },
        login: match record.kind {
            MessageKind::User => &record.login,
            MessageKind::System => "",
        },
        body_html: body.html,
        mentions: record.mentioned.join(" "),
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
            shown: file
                .image
                .as_ref()
                .map(|image| files::shown_size(image.width, image.height)),
            inline_path: match file.media_type.as_str() {
                "image/gif" => "file",
                _ => "thumbnail",
            },
        }),
    };
    let html = view.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, id = record.id, "message render failed");
        format!(
            r#"<article id="msg-{}" class="msg" data-kind="system" data-author="" data-login=""></article>"#,
            record.id
        )
    });
    (html, body.mentions)
}

/// The form that edits a message in place of its body (`hx-get` of the edit button).
#[derive(Template)]
#[template(path = "_message_edit.html")]
pub struct MessageEdit<'a> {
    pub slug: &'a str,
    pub id: i64,
    pub author: &'a str,
    pub login: &'a str,
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
