//! The HTTP surface: [`router`] joins each area's own `router()`, then the layers every
//! request passes. Handlers are thin: they parse, call a service, and render.

pub mod admin;
pub mod api;
pub mod attachments;
pub mod bots;
pub mod devices;
pub mod direct;
pub mod extract;
pub mod login;
pub mod messages;
pub mod middleware;
pub mod next;
pub mod nickname;
pub mod ops;
pub mod rooms;
pub mod search;
pub mod welcome;
pub mod ws;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::assets;
use crate::state::AppState;
use crate::store;

/// A urlencoded form over this gets 413. 64 KiB still fits 4,000 CJK characters encoded.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let sessions = SessionManagerLayer::new(state.sessions.clone())
        .with_name("chat_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.config.secure_cookies)
        .with_expiry(Expiry::OnInactivity(
            time::Duration::try_from(state.config.session_lifetime())
                .unwrap_or(time::Duration::MAX),
        ));

    Router::new()
        .merge(welcome::router())
        .merge(rooms::router())
        .merge(direct::router())
        .merge(login::router())
        .merge(devices::router())
        .merge(messages::router())
        .merge(attachments::router())
        .merge(ws::router())
        .merge(search::router())
        .merge(admin::router())
        .merge(bots::router())
        .merge(nickname::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::reject_cross_site,
        ))
        .layer(sessions)
        // Bearer tokens, not cookies: outside the session layer and its cross-site check.
        .merge(api::router())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(ops::router())
        .layer(middleware::compression())
        // Compressed once, ahead of time, by `assets` itself.
        .route("/static/{*path}", get(assets::serve))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::guard,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Liveness: the process answers. It does not ask the database, so a proxy doesn't restart
/// instances whose pages and sockets still work while the database is away.
pub async fn healthz() -> &'static str {
    "ok"
}

/// How long readiness waits for the database before calling it away.
const READY_WITHIN: Duration = Duration::from_secs(2);

/// Readiness: whether this instance should be sent new work. Not while it shuts down, nor
/// while its database does not answer a read.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let unavailable = |why: &'static str| (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    if state.shutdown.is_cancelled() {
        return unavailable("not ready: shutting down");
    }
    let read = store::blocking(&state.storage, |storage| storage.setting("readiness"));
    match tokio::time::timeout(READY_WITHIN, read).await {
        Ok(Ok(_)) => "ready".into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the database failed a read");
            unavailable("not ready: the database failed a read")
        }
        Err(_) => unavailable("not ready: the database does not answer"),
    }
}
