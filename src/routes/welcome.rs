//! The welcome screen, and starting a chat from it: by a name, a first message, or neither.

use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use time::OffsetDateTime;
use time::macros::format_description;

use super::extract::page::PageContext;
use crate::domain::{MessageBody, RoomName};
use crate::error::AppError;
use crate::hub::{Hub, NewMessage, Room};
use crate::state::AppState;
use crate::views::{WelcomePage, render};

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(welcome))
        .route("/rooms", post(create_room))
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
/// the room; with neither, it gets a dated default name that is never shared.
pub async fn create_room(
    State(state): State<AppState>,
    page: PageContext,
    Form(form): Form<NewRoomForm>,
) -> Result<Response, AppError> {
    let viewer = &page.viewer;
    let (name, first_message) = match read_new_room_form(&form) {
        Ok(plan) => plan,
        Err(error) => {
            let welcome = welcome_page(&state, &page, form.name, form.message, Some(error)).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&welcome)?).into_response());
        }
    };
    let room = match name {
        Some(name) => {
            state
                .hub
                .open_room(&name, viewer.nickname.as_str())
                .await?
                .0
        }
        None => {
            let now = OffsetDateTime::now_utc().to_offset(page.offset);
            let base = format!(
                "Chat {}",
                now.format(format_description!("[day]/[month]/[year] [hour]:[minute]"))
                    .unwrap_or_default()
            );
            open_new_room(&state.hub, &base, viewer.nickname.as_str()).await?
        }
    };
    if let Some(body) = first_message {
        if room.is_archived() {
            return Err(AppError::Archived);
        }
        state
            .hub
            .post(&room, NewMessage::said(&viewer.nickname, body))
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
