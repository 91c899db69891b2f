//! The welcome view, room pages, history pages, and the no-JavaScript message form.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::auth::CurrentUser;
use crate::domain::{ClientId, MessageBody, RoomName, Slug};
use crate::error::AppError;
use crate::hub::{Hub, NewMessage, Room};
use crate::security::CspNonce;
use crate::startup::AppState;
use crate::store::MessageKind;
use crate::views::{Chrome, ComposerError, History, RoomPage, Sidebar, WelcomePage, render};

fn sidebar(hub: &Hub, current: Option<&Slug>) -> Sidebar {
    Sidebar::new(&hub.rooms_by_activity(), current, OffsetDateTime::now_utc())
}

fn find_room(hub: &Hub, slug: &str) -> Result<Arc<Room>, AppError> {
    Slug::parse(slug)
        .and_then(|slug| hub.room(&slug))
        .ok_or(AppError::NotFound)
}

pub async fn welcome(
    State(state): State<AppState>,
    viewer: CurrentUser,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    Ok(render(&WelcomePage {
        page: Chrome::new("Welcome", Some(&viewer.nickname), &nonce.0),
        sidebar: sidebar(&state.hub, None),
        name: String::new(),
        error: None,
    })?
    .into_response())
}

#[derive(Deserialize)]
pub struct NewRoomForm {
    #[serde(default)]
    name: String,
}

pub async fn create_room(
    State(state): State<AppState>,
    viewer: CurrentUser,
    Extension(nonce): Extension<CspNonce>,
    Form(form): Form<NewRoomForm>,
) -> Result<Response, AppError> {
    match RoomName::parse(&form.name) {
        Ok(name) => {
            let room = state.hub.open_room(&name, &viewer.nickname).await?;
            Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response())
        }
        Err(e) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&WelcomePage {
                page: Chrome::new("Welcome", Some(&viewer.nickname), &nonce.0),
                sidebar: sidebar(&state.hub, None),
                name: form.name,
                error: Some(e.to_string()),
            })?,
        )
            .into_response()),
    }
}

async fn room_page(
    state: &AppState,
    viewer: &CurrentUser,
    nonce: &CspNonce,
    room: &Room,
    draft: String,
    error: Option<ComposerError>,
) -> Result<RoomPage, AppError> {
    Ok(RoomPage {
        page: Chrome::new(&room.name, Some(&viewer.nickname), &nonce.0),
        sidebar: sidebar(&state.hub, Some(&room.slug)),
        slug: room.slug.clone(),
        name: room.name.clone(),
        topic: room.topic.clone(),
        history: History {
            slug: room.slug.clone(),
            messages: state.hub.newest_page(room).await?,
        },
        live: true,
        draft,
        error,
    })
}

pub async fn show_room(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    viewer: CurrentUser,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug)?;
    let page = room_page(&state, &viewer, &nonce, &room, String::new(), None).await?;
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct BeforeQuery {
    before: u64,
}

/// Older messages: a fragment for htmx's "load older", a whole page without JavaScript.
pub async fn older_messages(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<BeforeQuery>,
    viewer: CurrentUser,
    headers: HeaderMap,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug)?;
    let history = History {
        slug: room.slug.clone(),
        messages: state.hub.page_before(&room, query.before).await?,
    };
    if headers.contains_key("hx-request") {
        return Ok(render(&history)?.into_response());
    }
    let mut page = room_page(&state, &viewer, &nonce, &room, String::new(), None).await?;
    page.history = history;
    page.live = false;
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct MessageForm {
    #[serde(default)]
    body: String,
    client_id: Option<String>,
}

/// Posting without JavaScript: persisted and broadcast like a socket message, then 303 back.
pub async fn post_message(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    viewer: CurrentUser,
    Extension(nonce): Extension<CspNonce>,
    Form(form): Form<MessageForm>,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug)?;
    let (status, error) = match MessageBody::parse(&form.body) {
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ComposerError::new(e.code(), e.to_string()),
        ),
        Ok(body) => {
            let client_id = form.client_id.as_deref().and_then(ClientId::parse);
            let message = NewMessage {
                kind: MessageKind::User,
                author: viewer.nickname.clone(),
                body: body.into_string(),
                dedup: client_id.map(|c| (viewer.login_id.clone(), c.as_str().to_owned())),
            };
            match state.hub.post(&room, message).await {
                Ok(_) => {
                    return Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response());
                }
                Err(e) => {
                    tracing::error!(error = %e, room = %room.slug, "message not stored");
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        ComposerError::new(
                            "store_failed",
                            "Your message could not be saved. It is still in the box below; please send it again.",
                        ),
                    )
                }
            }
        }
    };
    let page = room_page(&state, &viewer, &nonce, &room, form.body, Some(error)).await?;
    Ok((status, render(&page)?).into_response())
}
