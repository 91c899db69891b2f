//! Direct conversations: `/dm/{nickname}` opens the private room between two people.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::domain::{Nickname, Slug};
use crate::error::AppError;
use crate::identity::CurrentUser;
use crate::state::AppState;

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new().route("/dm/{nickname}", get(open_direct))
}

/// `/dm/{nickname}`: the direct conversation with a person, created on first use. Only the
/// two of them can ever see it; anyone else gets 404 on all of its paths.
pub async fn open_direct(
    State(state): State<AppState>,
    Path(nickname): Path<String>,
    viewer: CurrentUser,
) -> Result<Response, AppError> {
    let me = &viewer.nickname;
    let other = Nickname::parse(&nickname).map_err(|_| AppError::NotFound)?;
    if other.mention_key() == me.mention_key() {
        return Err(AppError::NotFound);
    }
    let slug = Slug::direct(&me.mention_key(), &other.mention_key());
    if state.hub.room(&slug).is_none() && !state.hub.nickname_is_held(&other).await? {
        return Err(AppError::NotFound);
    }
    let (room, _) = state.hub.open_direct(me, &other).await?;
    Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response())
}
