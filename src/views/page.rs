//! The chrome every full page carries, and the pages themselves.

use askama::Template;
use axum::body::Bytes;
use axum::response::{Html, IntoResponse, Response};

use super::pieces::Pieces;
use super::{ComposerError, History, NEWEST_PAGE_MARK, PageHistory, Sidebar, render_sized};
use crate::assets;
use crate::domain::Slug;
use crate::identity::CurrentUser;

/// What every full page carries: title, asset URLs, the viewer and the CSP nonce.
pub struct Chrome {
    pub title: String,
    pub viewer: Option<String>,
    /// The viewer's mention key, empty without a viewer.
    viewer_key: String,
    /// The viewer's login handle, empty without a viewer.
    viewer_login: String,
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
            viewer: viewer.map(|user| user.nickname.to_string()),
            viewer_key: viewer
                .map(|user| user.mention_key().to_owned())
                .unwrap_or_default(),
            viewer_login: viewer
                .map(|user| user.handle().to_owned())
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

    /// The viewer's login handle: what their own messages carry as `data-login`.
    pub fn viewer_login(&self) -> &str {
        &self.viewer_login
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
    /// Whether the form asks for the password protecting the nickname.
    pub ask_password: bool,
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

/// `/dm/{nickname}` before the conversation exists: a composer whose first message starts it.
#[derive(Template)]
#[template(path = "direct_new.html")]
pub struct NewDirectPage {
    pub page: Chrome,
    pub sidebar: Sidebar,
    /// The other person's nickname.
    pub name: String,
    pub body: String,
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
    pub history: PageHistory,
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

impl RoomPage {
    /// The page, written once into a buffer sized from its messages; the room's newest page,
    /// when it shows that, is sent from the bytes every such page shares.
    pub fn to_response(&self) -> askama::Result<Response> {
        // The messages are most of the page.
        let capacity = Self::SIZE_HINT + ROOM_PAGE_CHROME + self.history.rendered_len();
        let Html(page) = render_sized(self, capacity)?;
        let PageHistory::Newest(newest) = &self.history else {
            return Ok(Html(page).into_response());
        };
        // Searched from the end: only the composer comes after the messages.
        let at = page.rfind(NEWEST_PAGE_MARK).ok_or(askama::Error::Fmt)?;
        let mut head = Bytes::from(page);
        let tail = head.split_off(at + NEWEST_PAGE_MARK.len());
        head.truncate(at);
        Ok(Html(Pieces::body([head, newest.markup.clone(), tail])).into_response())
    }

    /// The page showing an older part of the history than the newest: it doesn't go live.
    pub fn showing(mut self, history: History) -> RoomPage {
        self.history = PageHistory::Rendered(history);
        self.live = false;
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
