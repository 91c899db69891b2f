//! One message: its permalink, and the edits, deletions and reactions people make to it.
//! Every change goes through the hub, which stores it and replaces the message live for
//! everyone in the room; the htmx caller also gets the new rendering as its response.

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::admin::Admin;
use super::extract::page::PageContext;
use super::extract::room::{find_room, writable_room};
use crate::domain::{FrameError, MessageBody};
use crate::error::AppError;
use crate::hub::{ChangeError, MessageChange, PAGE};
use crate::identity::CurrentUser;
use crate::state::AppState;
use crate::views::{History, MessageEdit, REACTIONS, RenderedMessage, render};

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/rooms/{slug}/messages/{id}",
            get(show_message).put(update_message).delete(delete_message),
        )
        .route("/rooms/{slug}/messages/{id}/edit", get(edit_form))
        .route(
            "/rooms/{slug}/messages/{id}/reactions",
            post(toggle_reaction),
        )
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

fn message_html(message: &RenderedMessage) -> Response {
    Html(message.html.clone()).into_response()
}

/// The permalink: the room page opened at the message (with the history around it when it
/// is older than the newest page). To htmx, just the message, as it is now.
pub async fn show_message(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, u64)>,
    page: PageContext,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug, &page.viewer)?;
    if id == 0 || id > room.last_id() {
        return Err(AppError::NotFound);
    }
    if is_htmx(&headers) {
        let message = state.hub.message(&room, id).await?;
        let message = message.ok_or(AppError::NotFound)?;
        return Ok(message_html(&message));
    }
    let mut shown = page.room_page(&state, &room, String::new(), None).await?;
    if !shown.history.shows(id) {
        let around = state.hub.page_before(&room, id + PAGE / 2 + 1).await?;
        shown = shown.showing(History::new(room.slug.clone(), around, None));
    }
    shown.focus = Some(id);
    Ok(shown.to_response()?)
}

/// The edit form, swapped in place of the viewer's own message.
pub async fn edit_form(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, u64)>,
    viewer: CurrentUser,
) -> Result<Response, AppError> {
    let room = writable_room(&state.hub, &slug, &viewer)?;
    let record = state
        .hub
        .message_record(&room, id)
        .await?
        .filter(|m| !m.deleted)
        .ok_or(AppError::NotFound)?;
    if record.login != viewer.handle() {
        return Err(AppError::NotAuthor);
    }
    let form = MessageEdit {
        slug: room.slug.as_str(),
        id: record.id,
        author: &record.author,
        login: &record.login,
        body: &record.body,
    };
    Ok(render(&form)?.into_response())
}

#[derive(Deserialize)]
pub struct EditForm {
    #[serde(default)]
    body: String,
}

pub async fn update_message(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, u64)>,
    viewer: CurrentUser,
    Form(form): Form<EditForm>,
) -> Result<Response, AppError> {
    let room = writable_room(&state.hub, &slug, &viewer)?;
    let body = match MessageBody::parse(&form.body) {
        Ok(body) => body,
        Err(e) => return Ok((StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).into_response()),
    };
    if !state.rate_limiter.allow(&viewer.login_id) {
        return Ok(rate_limited());
    }
    let change = MessageChange::Edit(body.into_string());
    let message = state.hub.change_message(&room, id, &viewer, change).await?;
    Ok(message_html(&message))
}

/// The author deletes their message; an admin may delete anyone's (and an archived room's),
/// which also says so in the stream.
pub async fn delete_message(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, u64)>,
    viewer: CurrentUser,
    admin: Option<Admin>,
) -> Result<Response, AppError> {
    let Some(admin) = admin else {
        let room = writable_room(&state.hub, &slug, &viewer)?;
        let message = state
            .hub
            .change_message(&room, id, &viewer, MessageChange::Delete)
            .await?;
        return Ok(message_html(&message));
    };
    let room = find_room(&state.hub, &slug, &viewer)?;
    let own = state
        .hub
        .change_message(&room, id, &viewer, MessageChange::Delete)
        .await;
    let message = match own {
        Err(ChangeError::Forbidden) => {
            state
                .hub
                .delete_as_admin(&room, id, &admin.display_name())
                .await?
        }
        own => own?,
    };
    Ok(message_html(&message))
}

#[derive(Deserialize)]
pub struct ReactionForm {
    #[serde(default)]
    emoji: String,
}

/// Adds the viewer's reaction, or takes it back if it was there. Works as a plain form too.
pub async fn toggle_reaction(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, u64)>,
    viewer: CurrentUser,
    headers: HeaderMap,
    Form(form): Form<ReactionForm>,
) -> Result<Response, AppError> {
    let room = writable_room(&state.hub, &slug, &viewer)?;
    if !REACTIONS.contains(&form.emoji.as_str()) {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Reactions are one of {}.", REACTIONS.join(" ")),
        )
            .into_response());
    }
    if !state.rate_limiter.allow(&viewer.login_id) {
        return Ok(rate_limited());
    }
    let change = MessageChange::React(form.emoji);
    let message = state.hub.change_message(&room, id, &viewer, change).await?;
    if is_htmx(&headers) {
        return Ok(message_html(&message));
    }
    Ok(Redirect::to(&format!("/rooms/{}/messages/{id}#msg-{id}", room.slug)).into_response())
}

fn rate_limited() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        FrameError::RateLimited.to_string(),
    )
        .into_response()
}
