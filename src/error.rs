//! One error type for the web layer: server faults are logged and shown as a friendly page,
//! never as a stack trace.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::hub::ChangeError;
use crate::store::StoreError;
use crate::views::{Chrome, ErrorPage};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    /// Someone else's message: only its author may edit or delete it.
    #[error("not the author")]
    NotAuthor,
    /// Moderation is for admins only.
    #[error("not an admin")]
    NotAdmin,
    /// `Authorization: Bearer` with something other than the admin token.
    #[error("wrong admin token")]
    BadAdminToken,
    /// The room is archived: read-only.
    #[error("room archived")]
    Archived,
    /// `Host` names something other than this server (or nothing).
    #[error("unknown host")]
    UnknownHost,
    /// This client address guessed wrong too often at a secret; try again after this many
    /// seconds.
    #[error("too many wrong guesses")]
    TooManyGuesses(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("template failed: {0}")]
    Render(#[from] askama::Error),
    #[error("session failed: {0}")]
    Session(#[from] tower_sessions::session::Error),
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    fn status_and_text(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                "Nothing here",
                "There is no such page or room. It may have been mistyped, or it never existed.",
            ),
            AppError::NotAuthor => (
                StatusCode::FORBIDDEN,
                "Not your message",
                "Only the person who wrote a message can edit or delete it.",
            ),
            AppError::NotAdmin => (
                StatusCode::FORBIDDEN,
                "Admins only",
                "Only an admin can do that. An admin token or setup link makes a session an admin's.",
            ),
            AppError::BadAdminToken => (
                StatusCode::UNAUTHORIZED,
                "Wrong admin token",
                "The bearer token given is not this server's admin token.",
            ),
            AppError::Archived | AppError::Store(StoreError::Archived) => (
                StatusCode::FORBIDDEN,
                "This room is archived",
                "This room is archived: its history stays readable, but nobody can post or change anything in it.",
            ),
            AppError::UnknownHost => (
                StatusCode::MISDIRECTED_REQUEST,
                "Wrong address",
                "This chat does not answer to that host name. Open it at its own address (the one its operator set with --public-url).",
            ),
            AppError::TooManyGuesses(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many wrong tries",
                "Too many wrong codes or tokens came from your network address. Wait a minute, then try again.",
            ),
            AppError::Store(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Storage is unavailable",
                "The chat could not read or write its database. Nothing you sent was lost; please try again in a moment.",
            ),
            AppError::Render(_) | AppError::Session(_) | AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server hit an unexpected problem. It has been logged; please try again.",
            ),
        }
    }
}

impl From<ChangeError> for AppError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::NotFound => AppError::NotFound,
            ChangeError::Forbidden => AppError::NotAuthor,
            ChangeError::Store(e) => AppError::Store(e),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, heading, text) = self.status_and_text();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let page = ErrorPage {
            page: Chrome::new(heading, None, ""),
            heading: heading.into(),
            text: text.into(),
        };
        let mut response = match askama::Template::render(&page) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, text).into_response(),
        };
        if let AppError::TooManyGuesses(seconds) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
