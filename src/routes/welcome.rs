//! The welcome screen, and starting a chat from it: by a name, a first message, or neither.

use std::sync::Arc;

use askama::Template;

use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::extract::client::ClientAddr;
use super::extract::page::PageContext;
use crate::domain::{FrameError, MessageBody, RoomName};
use crate::error::AppError;
use crate::hub::{Hub, NewMessage, Room};
use crate::state::AppState;
use crate::views::{Chrome, RoomSummary, Sidebar, WelcomePage, render};

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(welcome))
        .route("/rooms", get(all_rooms).post(create_room))
}

/// A room named after its first message takes this much of the first line.
const NAME_FROM_MESSAGE_CHARS: usize = 40;

async fn welcome_page(
    state: &AppState,
    page: &PageContext,
    name: String,
    message: String,
    error: Option<String>,
) -> Result<WelcomePage, AppError> {
    let reader = state.hub.reader(&page.viewer.login_id).await?;
    Ok(WelcomePage {
        page: page.chrome("Welcome"),
        sidebar: page.sidebar(state, None, &reader),
        name,
        message,
        error,
    })
}

pub async fn welcome(
    State(state): State<AppState>,
    page: PageContext,
) -> Result<Response, AppError> {
    let welcome = welcome_page(&state, &page, String::new(), String::new(), None).await?;
    Ok(render(&welcome)?.into_response())
}

#[derive(Deserialize)]
pub struct NewRoomForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    message: String,
}

/// Opens a room by name (joining it if it exists). Without a name, a first message names
/// the room; with neither, it gets a default name ("Chat by alice") that is never shared. The first
/// message counts against the message rate limit, and a new room against the room limits;
/// past either, 429 and the form again with the text kept.
pub async fn create_room(
    State(state): State<AppState>,
    page: PageContext,
    client: ClientAddr,
    Form(form): Form<NewRoomForm>,
) -> Result<Response, AppError> {
    let viewer = &page.viewer;
    let refuse = async |status: StatusCode, error: String, form: NewRoomForm| {
        let welcome = welcome_page(&state, &page, form.name, form.message, Some(error)).await?;
        Ok::<_, AppError>((status, render(&welcome)?).into_response())
    };
    let (name, first_message) = match read_new_room_form(&form) {
        Ok(plan) => plan,
        Err(error) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, error, form).await,
    };
    if first_message.is_some() && !state.rate_limiter.allow(&viewer.login_id) {
        let error = FrameError::RateLimited.to_string();
        return refuse(StatusCode::TOO_MANY_REQUESTS, error, form).await;
    }
    let existing = name.as_ref().and_then(|name| state.hub.room(name.slug()));
    if existing.is_none()
        && let Err(error) = take_room_allowance(&state, &viewer.login_id, client)
    {
        return refuse(StatusCode::TOO_MANY_REQUESTS, error, form).await;
    }
    let (room, created) = match (existing, name) {
        (Some(room), _) => (room, false),
        (None, Some(name)) => {
            let (room, created) = state.hub.open_room(&name, viewer.nickname.as_str()).await?;
            if !created {
                // Someone else made it meanwhile: this was joining after all.
                state.creation.rooms_per_login.give_back(&viewer.login_id);
            }
            (room, created)
        }
        (None, None) => {
            // Named after its starter, not the time: a stored name can't follow each reader's
            // date format, and the sidebar already says when it was active.
            let base = format!("Chat by {}", viewer.nickname.as_str());
            (
                open_new_room(&state.hub, &base, viewer.nickname.as_str()).await?,
                true,
            )
        }
    };
    // "room created by alice" says it already; opening the room later says nothing more.
    if created {
        state.hub.join_as_creator(&viewer.login_id, &room).await?;
    }
    // Into an archived room, the committer refuses it (403).
    if let Some(body) = first_message {
        state
            .hub
            .post(&room, NewMessage::said(viewer, body))
            .await?;
    }
    Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response())
}

/// Counts one new room against the login's and the address's rate and the login's total,
/// or says why not.
fn take_room_allowance(state: &AppState, login_id: &str, client: ClientAddr) -> Result<(), String> {
    let limits = &state.creation;
    if !limits.rooms.allow(&format!("login:{login_id}")) || !limits.rooms.allow(&client.rate_key())
    {
        return Err(
            "You have started several rooms in the last minute. Wait a minute before starting another, or open an existing room by its name."
                .into(),
        );
    }
    if !limits.rooms_per_login.take(login_id) {
        return Err(format!(
            "You have started {} rooms, the most one login may. Open an existing room by its name instead.",
            limits.rooms_per_login.limit()
        ));
    }
    Ok(())
}

/// The welcome form as a plan: the room's name (`None` for the default, "Chat by alice") and the first
/// message, if any. A name left empty comes from the message's first line.
fn read_new_room_form(
    form: &NewRoomForm,
) -> Result<(Option<RoomName>, Option<MessageBody>), String> {
    let first_message = match form.message.trim() {
        "" => None,
        text => Some(MessageBody::parse(text).map_err(|e| e.to_string())?),
    };
    let name = if form.name.trim().is_empty() {
        first_message
            .as_ref()
            .map(|body| name_from_message(body.as_str()))
    } else {
        Some(form.name.clone())
    };
    let name = name
        .map(|name| RoomName::parse(&name))
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok((name, first_message))
}

/// A room name from a message's first line: whole words up to
/// [`NAME_FROM_MESSAGE_CHARS`], or the first word cut there if it is longer on its own.
fn name_from_message(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= NAME_FROM_MESSAGE_CHARS {
        return line.to_owned();
    }
    let cut: String = line.chars().take(NAME_FROM_MESSAGE_CHARS + 1).collect();
    match cut.rfind(char::is_whitespace) {
        Some(at) if !cut[..at].trim().is_empty() => cut[..at].trim_end().to_owned(),
        _ => cut.chars().take(NAME_FROM_MESSAGE_CHARS).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::name_from_message;

    #[test]
    fn a_name_from_a_message_ends_on_a_whole_word() {
        assert_eq!(
            name_from_message("Who is coming to the offsite in Lisbon next spring?"),
            "Who is coming to the offsite in Lisbon"
        );
        assert_eq!(name_from_message("Short one\nsecond line"), "Short one");
        let long_word = "x".repeat(60);
        assert_eq!(name_from_message(&long_word).len(), 40);
        // A word that ends exactly at the limit is kept whole.
        let exact = format!("{} tail", "y".repeat(40));
        assert_eq!(name_from_message(&exact), "y".repeat(40));
    }
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

/// `/rooms`: every named room, most recently active first; the sidebar lists only the newest.
#[derive(Template)]
#[template(path = "all_rooms.html")]
pub struct AllRoomsPage {
    pub page: Chrome,
    pub sidebar: Sidebar,
    pub rooms: Vec<RoomSummary>,
}

pub async fn all_rooms(
    State(state): State<AppState>,
    page: PageContext,
) -> Result<Response, AppError> {
    let reader = state.hub.reader(&page.viewer.login_id).await?;
    let rooms = state
        .hub
        .room_summaries()
        .into_iter()
        .filter(|room| room.slug.direct_members().is_none())
        .collect();
    Ok(render(&AllRoomsPage {
        page: page.chrome("All rooms"),
        sidebar: page.sidebar(&state, None, &reader),
        rooms,
    })?
    .into_response())
}
