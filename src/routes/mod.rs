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

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::assets;
use crate::state::AppState;

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
        .merge(ops::router())
        .layer(middleware::compression())
        // Compressed once, ahead of time, by `assets` itself.
        .route("/static/{*path}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::check_host,
        ))
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::time_limit,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

pub async fn healthz() -> &'static str {
    "ok"
}
