//! What every page of a logged-in person needs from the request, taken once: who is looking,
//! their time zone, the page's CSP nonce and whether their session is an admin's. Pages are
//! built from it, so there is one way to render a room page.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::response::Response;
use time::{OffsetDateTime, UtcOffset};

use super::admin::Admin;
use super::viewer_offset;
use crate::domain::Slug;
use crate::error::AppError;
use crate::hub::Room;
use crate::identity::CurrentUser;
use crate::security::CspNonce;
use crate::state::AppState;
use crate::store::ReaderRecord;
use crate::views::{Chrome, ComposerError, History, PageHistory, RoomPage, Sidebar, SidebarViewer};

pub struct PageContext {
    pub viewer: CurrentUser,
    /// The viewer's UTC offset, from the `tz` cookie the page script sets.
    pub offset: UtcOffset,
    nonce: String,
    /// Admin controls are shown; the server checks every admin action regardless.
    pub admin: bool,
}

/// Without a login, the browser is sent to the login form and back (as for `CurrentUser`).
impl FromRequestParts<AppState> for PageContext {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let viewer =
            <CurrentUser as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        let admin = <Admin as OptionalFromRequestParts<AppState>>::from_request_parts(parts, state)
            .await?
            .is_some();
        let nonce = parts
            .extensions
            .get::<CspNonce>()
            .map(|nonce| nonce.0.clone())
            .unwrap_or_default();
        Ok(PageContext {
            viewer,
            offset: viewer_offset(&parts.headers),
            nonce,
            admin,
        })
    }
}

impl PageContext {
    /// The chrome of a page titled `title`, for this viewer.
    pub fn chrome(&self, title: impl Into<String>) -> Chrome {
        Chrome::new(title, Some(&self.viewer), &self.nonce).for_admin(self.admin)
    }

    /// The sidebar as this viewer sees it, with `current` marked.
    pub fn sidebar(
        &self,
        state: &AppState,
        current: Option<&Slug>,
        reader: &ReaderRecord,
    ) -> Sidebar {
        let now = OffsetDateTime::now_utc().to_offset(self.offset);
        Sidebar::new(
            &state.hub.room_summaries(),
            now,
            Some(SidebarViewer {
                current,
                reader,
                login: self.viewer.handle(),
            }),
        )
    }

    /// A room's page at its newest messages, with `draft` and `error` in the composer, and
    /// the room marked read up to its newest message.
    pub async fn room_page(
        &self,
        state: &AppState,
        room: &Arc<Room>,
        draft: String,
        error: Option<ComposerError>,
    ) -> Result<RoomPage, AppError> {
        let viewer = &self.viewer;
        let reader = state.hub.reader(&viewer.login_id).await?;
        // Read before the history: a change made meanwhile is sent again on connecting.
        let revision = room.revision();
        let last_read = reader
            .last_read
            .get(room.slug.as_str())
            .map(|&id| id.max(0) as u64);
        let history = match last_read.filter(|&read| read < room.last_id()) {
            Some(read) => {
                let messages = state.hub.newest_page(room).await?;
                // What is new to the viewer: someone else's words. Their own, and system
                // lines (their own "joined" among them), are not news.
                let first_unread = messages
                    .iter()
                    .find(|m| m.id > read && m.counts() && m.author != viewer.nickname.as_str())
                    .map(|m| m.id)
                    .filter(|&id| id > 1);
                PageHistory::Rendered(History::new(room.slug.clone(), messages, first_unread))
            }
            // Nothing unread to mark: the newest page every such viewer is sent.
            None => PageHistory::Newest(state.hub.loaded(room).await?.newest_page_markup()?),
        };
        let direct = room.slug.direct_members().is_some();
        let name = room
            .partner_of(viewer.handle())
            .unwrap_or_else(|| room.name());
        let page = RoomPage {
            page: self.chrome(name.clone()),
            sidebar: self.sidebar(state, Some(&room.slug), &reader),
            slug: room.slug.clone(),
            name,
            direct,
            topic: room.topic(),
            here: room.here(),
            muted: reader.has_muted(room.slug.as_str()),
            archived: room.is_archived(),
            history,
            revision,
            live: true,
            focus: None,
            draft,
            error,
            max_upload: state.config.max_upload,
        };
        // Reading goes on when the disk is full; only the unread marks are behind.
        if let Err(e) = state
            .hub
            .visit(&viewer.login_id, &viewer.nickname, room, &reader)
            .await
        {
            tracing::warn!(error = %e, "could not remember what was read");
        }
        Ok(page)
    }
}
