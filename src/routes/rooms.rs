//! The welcome view, room pages, history pages, topics, muting, and the no-JavaScript
//! message form.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use time::OffsetDateTime;
use time::macros::format_description;

use super::viewer_offset;
use crate::admin::Admin;
use crate::auth::CurrentUser;
use crate::domain::{ClientId, FrameError, MessageBody, Nickname, RoomName, Slug};
use crate::error::AppError;
use crate::hub::{Hub, NewMessage, Room};
use crate::security::CspNonce;
use crate::startup::AppState;
use crate::store::{MessageKind, ReaderRecord};
use crate::views::{
    Chrome, ComposerError, History, MentionSuggestions, RoomPage, Sidebar, SidebarViewer,
    WelcomePage, direct_partner, render,
};

/// A topic longer than this is refused.
const MAX_TOPIC_CHARS: usize = 200;
/// A room named after its first message takes this much of the first line.
const NAME_FROM_MESSAGE_CHARS: usize = 40;

pub(super) fn sidebar(
    hub: &Hub,
    headers: &HeaderMap,
    viewer: &CurrentUser,
    current: Option<&Slug>,
    reader: &ReaderRecord,
) -> Sidebar {
    let now = OffsetDateTime::now_utc().to_offset(viewer_offset(headers));
    Sidebar::new(
        &hub.room_summaries(),
        now,
        Some(SidebarViewer {
            current,
            reader,
            mention_key: viewer.mention_key(),
        }),
    )
}

/// The room at this URL, if the viewer may see it: to anyone else a direct conversation
/// does not exist.
pub(super) fn find_room(
    hub: &Hub,
    slug: &str,
    viewer: &CurrentUser,
) -> Result<Arc<Room>, AppError> {
    hub.readable_room(slug, viewer.mention_key())
        .ok_or(AppError::NotFound)
}

/// A room the viewer may change something in: readable, and not archived.
pub(super) fn writable_room(
    state: &AppState,
    slug: &str,
    viewer: &CurrentUser,
) -> Result<Arc<Room>, AppError> {
    let room = find_room(&state.hub, slug, viewer)?;
    if room.is_archived() {
        return Err(AppError::Archived);
    }
    Ok(room)
}

async fn welcome_page(
    state: &AppState,
    viewer: &CurrentUser,
    headers: &HeaderMap,
    nonce: &CspNonce,
    name: String,
    message: String,
    error: Option<String>,
) -> Result<WelcomePage, AppError> {
    let reader = state.hub.reader(&viewer.login_id).await?;
    Ok(WelcomePage {
        page: Chrome::new("Welcome", Some(viewer), &nonce.0),
        sidebar: sidebar(&state.hub, headers, viewer, None, &reader),
        name,
        message,
        error,
    })
}

pub async fn welcome(
    State(state): State<AppState>,
    viewer: CurrentUser,
    headers: HeaderMap,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    let page = welcome_page(
        &state,
        &viewer,
        &headers,
        &nonce,
        String::new(),
        String::new(),
        None,
    )
    .await?;
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct NewRoomForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    message: String,
}

/// Opens a room by name (joining it if it exists). Without a name, a first message names
/// the room; with neither, it gets a dated default name that is never shared.
pub async fn create_room(
    State(state): State<AppState>,
    viewer: CurrentUser,
    headers: HeaderMap,
    Extension(nonce): Extension<CspNonce>,
    Form(form): Form<NewRoomForm>,
) -> Result<Response, AppError> {
    let (name, first_message) = match read_new_room_form(&form) {
        Ok(plan) => plan,
        Err(error) => {
            let page = welcome_page(
                &state,
                &viewer,
                &headers,
                &nonce,
                form.name,
                form.message,
                Some(error),
            )
            .await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response());
        }
    };
    let room = match name {
        Some(name) => state.hub.open_room(&name, &viewer.nickname).await?.0,
        None => {
            let now = OffsetDateTime::now_utc().to_offset(viewer_offset(&headers));
            let base = format!(
                "Chat {}",
                now.format(format_description!("[day]/[month]/[year] [hour]:[minute]"))
                    .unwrap_or_default()
            );
            open_new_room(&state.hub, &base, &viewer.nickname).await?
        }
    };
    if let Some(body) = first_message {
        if room.is_archived() {
            return Err(AppError::Archived);
        }
        state
            .hub
            .post(
                &room,
                NewMessage {
                    kind: MessageKind::User,
                    author: viewer.nickname.clone(),
                    body: body.into_string(),
                    dedup: None,
                    reply_to: None,
                    attachment: None,
                },
            )
            .await?;
    }
    Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response())
}

/// The welcome form as a plan: the room's name (`None` for a dated default) and the first
/// message, if any. A name left empty comes from the message's first line.
fn read_new_room_form(
    form: &NewRoomForm,
) -> Result<(Option<RoomName>, Option<MessageBody>), String> {
    let first_message = match form.message.trim() {
        "" => None,
        text => Some(MessageBody::parse(text).map_err(|e| e.to_string())?),
    };
    let name = if form.name.trim().is_empty() {
        first_message.as_ref().map(|body| {
            let line = body.as_str().lines().next().unwrap_or_default();
            line.chars()
                .take(NAME_FROM_MESSAGE_CHARS)
                .collect::<String>()
        })
    } else {
        Some(form.name.clone())
    };
    let name = name
        .map(|name| RoomName::parse(&name))
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok((name, first_message))
}

/// Creates a room named `base`, or `base (2)`, `base (3)`… if taken, so two people
/// starting chats in the same minute don't land in one room.
async fn open_new_room(hub: &Hub, base: &str, creator: &str) -> Result<Arc<Room>, AppError> {
    for n in 1..=1000 {
        let candidate = if n == 1 {
            base.to_owned()
        } else {
            format!("{base} ({n})")
        };
        let name = RoomName::parse(&candidate)
            .map_err(|e| AppError::Internal(format!("default room name {candidate:?}: {e}")))?;
        let (room, created) = hub.open_room(&name, creator).await?;
        if created {
            return Ok(room);
        }
    }
    Err(AppError::Internal(format!(
        "no free room name after {base:?}"
    )))
}

pub(super) async fn room_page(
    state: &AppState,
    viewer: &CurrentUser,
    headers: &HeaderMap,
    nonce: &CspNonce,
    room: &Room,
    draft: String,
    error: Option<ComposerError>,
) -> Result<RoomPage, AppError> {
    let reader = state.hub.reader(&viewer.login_id).await?;
    // Read before the history: a change made meanwhile is sent again on connecting.
    let revision = room.revision();
    let messages = state.hub.newest_page(room).await?;
    let last_read = reader
        .last_read
        .get(room.slug.as_str())
        .map(|&id| id.max(0) as u64);
    let first_unread = last_read.and_then(|read| {
        messages
            .iter()
            .find(|m| m.id > read)
            .map(|m| m.id)
            .filter(|&id| id > 1)
    });
    let direct = room.slug.direct_members().is_some();
    let room_name = room.name();
    let name = match direct {
        true => direct_partner(&room_name, viewer.mention_key()).unwrap_or(&room_name),
        false => &room_name,
    };
    let page = RoomPage {
        page: Chrome::new(name, Some(viewer), &nonce.0),
        sidebar: sidebar(&state.hub, headers, viewer, Some(&room.slug), &reader),
        slug: room.slug.clone(),
        name: name.to_owned(),
        direct,
        topic: room.topic(),
        here: room.here(),
        muted: reader.muted.iter().any(|m| m == room.slug.as_str()),
        archived: room.is_archived(),
        history: History {
            slug: room.slug.clone(),
            messages,
            first_unread,
        },
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
        .mark_read(&viewer.login_id, &room.slug, room.last_id())
        .await
    {
        tracing::warn!(error = %e, "could not remember what was read");
    }
    Ok(page)
}

pub async fn show_room(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    viewer: CurrentUser,
    admin: Option<Admin>,
    headers: HeaderMap,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug, &viewer)?;
    let page = room_page(
        &state,
        &viewer,
        &headers,
        &nonce,
        &room,
        String::new(),
        None,
    )
    .await?
    .for_admin(admin.is_some());
    Ok(page.into_response())
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
    admin: Option<Admin>,
    headers: HeaderMap,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug, &viewer)?;
    let history = History {
        slug: room.slug.clone(),
        messages: state.hub.page_before(&room, query.before).await?,
        first_unread: None,
    };
    if headers.contains_key("hx-request") {
        return Ok(render(&history)?.into_response());
    }
    let mut page = room_page(
        &state,
        &viewer,
        &headers,
        &nonce,
        &room,
        String::new(),
        None,
    )
    .await?
    .for_admin(admin.is_some());
    page.history = history;
    page.live = false;
    Ok(page.into_response())
}

#[derive(Deserialize)]
pub struct MessageForm {
    #[serde(default)]
    body: String,
    client_id: Option<String>,
    /// Empty when the message answers nothing.
    #[serde(default)]
    reply_to: String,
}

/// Posting without JavaScript: persisted and broadcast like a socket message, then 303 back.
pub async fn post_message(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    viewer: CurrentUser,
    admin: Option<Admin>,
    headers: HeaderMap,
    Extension(nonce): Extension<CspNonce>,
    Form(form): Form<MessageForm>,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug, &viewer)?;
    let (status, error) = match MessageBody::parse(&form.body) {
        _ if room.is_archived() => (StatusCode::FORBIDDEN, ComposerError::archived()),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ComposerError::new(e.code(), e.to_string()),
        ),
        Ok(_) if !state.rate_limiter.allow(&viewer.login_id) => {
            let limited = FrameError::RateLimited;
            (
                StatusCode::TOO_MANY_REQUESTS,
                ComposerError::new(limited.code(), limited.to_string()),
            )
        }
        Ok(body) => {
            let client_id = form.client_id.as_deref().and_then(ClientId::parse);
            let message = NewMessage {
                kind: MessageKind::User,
                author: viewer.nickname.clone(),
                body: body.into_string(),
                dedup: client_id.map(|c| (viewer.login_id.clone(), c.as_str().to_owned())),
                reply_to: form.reply_to.parse().ok(),
                attachment: None,
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
    let page = room_page(
        &state,
        &viewer,
        &headers,
        &nonce,
        &room,
        form.body,
        Some(error),
    )
    .await?
    .for_admin(admin.is_some());
    Ok((status, page).into_response())
}

/// `/dm/{nickname}`: the direct conversation with a person, created on first use. Only the
/// two of them can ever see it; anyone else gets 404 on all of its paths.
pub async fn open_direct(
    State(state): State<AppState>,
    Path(nickname): Path<String>,
    viewer: CurrentUser,
) -> Result<Response, AppError> {
    let me = Nickname::parse(&viewer.nickname)
        .map_err(|e| AppError::Internal(format!("session nickname {:?}: {e}", viewer.nickname)))?;
    let other = Nickname::parse(&nickname).map_err(|_| AppError::NotFound)?;
    if other.mention_key() == me.mention_key() {
        return Err(AppError::NotFound);
    }
    let slug = Slug::direct(&me.mention_key(), &other.mention_key());
    if state.hub.room(&slug).is_none() && !state.hub.nickname_is_held(&other).await? {
        return Err(AppError::NotFound);
    }
    let (room, _) = state.hub.open_direct(&me, &other).await?;
    Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response())
}

#[derive(Deserialize)]
pub struct MentionQuery {
    #[serde(default)]
    q: String,
}

/// Who `@` could mean, as a list the composer shows while the viewer types a mention.
pub async fn mention_suggestions(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<MentionQuery>,
    viewer: CurrentUser,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug, &viewer)?;
    // What follows `@` so far; something no nickname starts with matches nobody.
    let prefix = match query.q.as_str() {
        "" => Some(String::new()),
        typed => Nickname::parse(typed).ok().map(|n| n.mention_key()),
    };
    let names = match prefix {
        Some(prefix) => {
            state
                .hub
                .mention_candidates(&room, &viewer.nickname, &prefix)
                .await?
        }
        None => Vec::new(),
    };
    Ok(render(&MentionSuggestions { names })?.into_response())
}

#[derive(Deserialize)]
pub struct TopicForm {
    #[serde(default)]
    topic: String,
}

/// Anyone in a room may change its topic; everyone sees it change live.
pub async fn set_topic(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    viewer: CurrentUser,
    headers: HeaderMap,
    Form(form): Form<TopicForm>,
) -> Result<Response, AppError> {
    let room = writable_room(&state, &slug, &viewer)?;
    let topic = form.topic.trim().to_owned();
    if topic.chars().count() > MAX_TOPIC_CHARS {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("A topic can be at most {MAX_TOPIC_CHARS} characters long."),
        )
            .into_response());
    }
    if topic != room.topic() {
        state.hub.set_topic(&room, topic, &viewer.nickname).await?;
    }
    if headers.contains_key("hx-request") {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response())
}

/// Mutes or unmutes a room for the viewer: still counted, never highlighted.
pub async fn toggle_mute(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    viewer: CurrentUser,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug, &viewer)?;
    state.hub.toggle_mute(&viewer.login_id, &room.slug).await?;
    Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response())
}
