//! Direct conversations: `/dm/{nickname}` with the login that holds a nickname now.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::extract::page::PageContext;
use crate::domain::{FrameError, MessageBody, Nickname};
use crate::error::AppError;
use crate::hub::NewMessage;
use crate::state::AppState;
use crate::store::DirectMember;
use crate::views::{NewDirectPage, render};

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new().route("/dm/{nickname}", get(open_direct).post(start_direct))
}

/// The viewer and the person holding `nickname` now, as a conversation names them. 404 for
/// a name nobody holds, and for the viewer's own.
async fn both_people(
    state: &AppState,
    page: &PageContext,
    nickname: &str,
) -> Result<(DirectMember, DirectMember), AppError> {
    let other = Nickname::parse(nickname).map_err(|_| AppError::NotFound)?;
    let other = state.hub.holder(&other).await?.ok_or(AppError::NotFound)?;
    let me = DirectMember {
        login: page.viewer.handle().to_owned(),
        name: page.viewer.nickname.to_string(),
        former: false,
    };
    if other.login == me.login {
        return Err(AppError::NotFound);
    }
    Ok((me, other))
}

/// `/dm/{nickname}`: the conversation with whoever holds the nickname now, or, before it
/// exists, a composer for its first message. Opening it changes nothing and tells nobody.
/// Only its two logins can ever see it; anyone else gets 404 on all of its paths.
pub async fn open_direct(
    State(state): State<AppState>,
    page: PageContext,
    Path(nickname): Path<String>,
) -> Result<Response, AppError> {
    let (me, other) = both_people(&state, &page, &nickname).await?;
    if let Some(room) = state.hub.direct_room(&me, &other) {
        return Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response());
    }
    Ok(
        render(&new_direct_page(&state, &page, other.name, String::new(), None).await?)?
            .into_response(),
    )
}

#[derive(Deserialize)]
pub struct FirstMessage {
    #[serde(default)]
    body: String,
}

/// The first message of a direct conversation, which creates it.
pub async fn start_direct(
    State(state): State<AppState>,
    page: PageContext,
    Path(nickname): Path<String>,
    Form(form): Form<FirstMessage>,
) -> Result<Response, AppError> {
    let (me, other) = both_people(&state, &page, &nickname).await?;
    let refused = match MessageBody::parse(&form.body) {
        Err(e) => Err((StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
        Ok(_) if !state.rate_limiter.allow(&page.viewer.login_id) => Err((
            StatusCode::TOO_MANY_REQUESTS,
            FrameError::RateLimited.to_string(),
        )),
        Ok(body) => Ok(body),
    };
    let body = match refused {
        Ok(body) => body,
        Err((status, error)) => {
            let again = new_direct_page(&state, &page, other.name, form.body, Some(error)).await?;
            return Ok((status, render(&again)?).into_response());
        }
    };
    let (room, _) = state.hub.open_direct(me, other).await?;
    let viewer = &page.viewer;
    state
        .hub
        .post(&room, NewMessage::said(viewer, body))
        .await?;
    Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response())
}

async fn new_direct_page(
    state: &AppState,
    page: &PageContext,
    name: String,
    body: String,
    error: Option<String>,
) -> Result<NewDirectPage, AppError> {
    let reader = state.hub.reader(&page.viewer.login_id).await?;
    Ok(NewDirectPage {
        page: page.chrome(format!("Message {name}")),
        sidebar: page.sidebar(state, None, &reader),
        name,
        body,
        error,
    })
}
