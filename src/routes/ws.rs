//! The WebSockets: `/rooms/{slug}/ws` for a room page, `/ws` for pages without a room (it
//! carries only sidebar updates).
//!
//! The sockets themselves are [`crate::socket`]'s: these handlers check who asks, and from
//! where, and hand the engine what it needs.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::extract::viewer_offset;
use crate::domain::Slug;
use crate::error::AppError;
use crate::hub::Room;
use crate::identity::CurrentUser;
use crate::socket::{Connection, Upgrade};
use crate::state::AppState;

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rooms/{slug}/ws", get(room_socket))
        .route("/ws", get(global_socket))
}

pub async fn room_socket(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    viewer: Option<CurrentUser>,
    headers: HeaderMap,
    upgrade: Upgrade,
) -> Result<Response, AppError> {
    let room = Slug::parse(&slug)
        .and_then(|slug| state.hub.room(&slug))
        .filter(|room| viewer.as_ref().is_none_or(|v| room.readable_by(v.handle())))
        .ok_or(AppError::NotFound);
    accept(state, viewer, headers, upgrade, Some(room)).await
}

/// The socket of pages without a room: sidebar updates only.
pub async fn global_socket(
    State(state): State<AppState>,
    viewer: Option<CurrentUser>,
    headers: HeaderMap,
    upgrade: Upgrade,
) -> Result<Response, AppError> {
    accept(state, viewer, headers, upgrade, None).await
}

async fn accept(
    state: AppState,
    viewer: Option<CurrentUser>,
    headers: HeaderMap,
    upgrade: Upgrade,
    room: Option<Result<Arc<Room>, AppError>>,
) -> Result<Response, AppError> {
    let Some(viewer) = viewer else {
        return Ok((StatusCode::UNAUTHORIZED, "Log in first.").into_response());
    };
    if !state.origin.matches(&headers) {
        return Ok((StatusCode::FORBIDDEN, "Foreign origin.").into_response());
    }
    let room = room.transpose()?;
    let Some(guard) = state.hub.open_socket(&viewer.login_id, room.as_ref()) else {
        return Ok((StatusCode::TOO_MANY_REQUESTS, "Too many open tabs.").into_response());
    };
    let connection = Connection {
        hub: state.hub.clone(),
        room,
        viewer,
        offset: viewer_offset(&headers),
        guard,
        rate_limiter: state.rate_limiter.clone(),
        ping_every: state.config.ping_interval(),
        resume_grace: state.config.resume_grace(),
        shutdown: state.shutdown.clone(),
        metrics: state.metrics.clone(),
    };
    let (response, upgraded) = upgrade.accept();
    // The socket's task is spawned as is, not wrapped in another: every byte of its state is
    // kept for every open socket.
    tokio::spawn(state.tracker.track_future(connection.run(upgraded)));
    Ok(response)
}
