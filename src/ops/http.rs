//! `/metrics`, which needs `Authorization: Bearer <admin token>`; without a configured
//! token it answers 404, so a server never hands out its numbers by default.

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::AppError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// A request that carried the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = state
            .config
            .admin_token
            .as_deref()
            .filter(|t| !t.is_empty())
        else {
            return Err(AppError::NotFound.into_response());
        };
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given.is_some_and(|given| same_secret(given.as_bytes(), token.as_bytes())) {
            Ok(Admin)
        } else {
            Err((
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "This needs the admin token: Authorization: Bearer <token>.",
            )
                .into_response())
        }
    }
}

/// Compares every byte whatever the first difference, so the time taken doesn't tell how
/// much of a guess was right. (The length may show; a token's length is no secret.)
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let differences = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(differences) == 0 && given.len() == expected.len()
}

async fn metrics(_: Admin, State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.hub.render_metrics(),
    )
        .into_response()
}
