//! Room pages, history pages, topics, muting, mention suggestions, and the no-JavaScript
//! message form.

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::page::PageContext;
use super::extract::room::{find_room, writable_room};
use crate::domain::{ClientId, FrameError, MessageBody, Nickname};
use crate::error::AppError;
use crate::hub::NewMessage;
use crate::identity::CurrentUser;
use crate::state::AppState;
use crate::views::{ComposerError, History, MentionSuggestions, render};

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rooms/{slug}", get(show_room))
        .route(
            "/rooms/{slug}/messages",
            get(older_messages).post(post_message),
        )
        .route("/rooms/{slug}/mentions", get(mention_suggestions))
        .route("/rooms/{slug}/topic", post(set_topic))
        .route("/rooms/{slug}/mute", post(toggle_mute))
        .route("/rooms/{slug}/leave", post(leave_room))
}

/// A topic longer than this is refused.
const MAX_TOPIC_CHARS: usize = 200;

pub async fn show_room(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    page: PageContext,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug, &page.viewer)?;
    let shown = page.room_page(&state, &room, String::new(), None).await?;
    Ok(shown.to_response()?)
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
    page: PageContext,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug, &page.viewer)?;
    let messages = state.hub.page_before(&room, query.before).await?;
    let history = History::new(room.slug.clone(), messages, None);
    if headers.contains_key("hx-request") {
        return Ok(render(&history)?.into_response());
    }
    let shown = page
        .room_page(&state, &room, String::new(), None)
        .await?
        .showing(history);
    Ok(shown.to_response()?)
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
    page: PageContext,
    Form(form): Form<MessageForm>,
) -> Result<Response, AppError> {
    let viewer = &page.viewer;
    let room = find_room(&state.hub, &slug, viewer)?;
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
            let message = NewMessage::said(viewer, body)
                .with_client_id(&viewer.login_id, client_id.as_ref())
                .answering(form.reply_to.parse().ok());
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
    let shown = page
        .room_page(&state, &room, form.body, Some(error))
        .await?;
    Ok((status, shown.to_response()?).into_response())
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
                .mention_candidates(&room, viewer.nickname.as_str(), &prefix)
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

/// Anyone in a room may change its topic; everyone sees it change live. A change counts
/// against the message rate limit.
pub async fn set_topic(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    viewer: CurrentUser,
    headers: HeaderMap,
    Form(form): Form<TopicForm>,
) -> Result<Response, AppError> {
    let room = writable_room(&state.hub, &slug, &viewer)?;
    let topic = form.topic.trim().to_owned();
    if topic.chars().count() > MAX_TOPIC_CHARS {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("A topic can be at most {MAX_TOPIC_CHARS} characters long."),
        )
            .into_response());
    }
    if topic != room.topic() {
        // Each change is stored and leaves a line in the stream, like a message.
        if !state.rate_limiter.allow(&viewer.login_id) {
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                "You are changing things too fast. Wait a moment, then set the topic again.",
            )
                .into_response());
        }
        state
            .hub
            .set_topic(&room, topic, viewer.nickname.as_str())
            .await?;
    }
    if headers.contains_key("hx-request") {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response())
}

/// Mutes or unmutes a room for the viewer: no count, no highlight, not in the tab title.
pub async fn toggle_mute(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    viewer: CurrentUser,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug, &viewer)?;
    state.hub.toggle_mute(&viewer.login_id, &room.slug).await?;
    Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response())
}

/// Leaving a room: the viewer is no longer a member, it leaves their sidebar and counts
/// nothing as unread, and the room says "left" once. Opening it again joins it again.
pub async fn leave_room(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    viewer: CurrentUser,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug, &viewer)?;
    // The other person would go on writing into a conversation nobody reads.
    if room.slug.direct_members().is_some() {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            "A direct conversation can't be left; mute it instead.",
        )
            .into_response());
    }
    state
        .hub
        .leave(&viewer.login_id, &viewer.nickname, &room)
        .await?;
    Ok(Redirect::to("/").into_response())
}
