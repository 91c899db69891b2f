//! `/settings/nickname`: protecting one's nickname with a password, as IRC's NickServ does.
//! A protected nickname is never released by logout or expiry; its password logs in to the
//! same login again (see `routes::login`). An admin's "remove" releases it.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::extract::client::ClientAddr;
use super::extract::page::PageContext;
use crate::error::AppError;
use crate::passwords;
use crate::state::AppState;
use crate::store;
use crate::views::{Chrome, Sidebar, render};

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new().route("/settings/nickname", get(settings).post(protect))
}

#[derive(Template)]
#[template(path = "nickname.html")]
pub struct NicknamePage {
    pub page: Chrome,
    pub sidebar: Sidebar,
    pub name: String,
    pub protected: bool,
    /// The password was just set.
    pub saved: bool,
    pub error: Option<String>,
}

async fn nickname_page(state: &AppState, page: &PageContext) -> Result<NicknamePage, AppError> {
    let reader = state.hub.reader(&page.viewer.login_id).await?;
    let key = page.viewer.nickname.key();
    let login_id = page.viewer.login_id.clone();
    let protected = store::blocking(&state.storage, move |s| {
        Ok(s.claim(&key)?
            .is_some_and(|c| c.login_id == login_id && c.password_hash.is_some()))
    })
    .await?;
    Ok(NicknamePage {
        page: page.chrome("Your nickname"),
        sidebar: page.sidebar(state, None, &reader),
        name: page.viewer.nickname.to_string(),
        protected,
        saved: false,
        error: None,
    })
}

pub async fn settings(
    State(state): State<AppState>,
    page: PageContext,
) -> Result<Response, AppError> {
    Ok(render(&nickname_page(&state, &page).await?)?.into_response())
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// Sets (or changes) the password protecting the viewer's nickname. Protecting a name
/// reserves it for good, so a client address protects at most `--bot-rate` names an hour,
/// from the same allowance as bots.
pub async fn protect(
    State(state): State<AppState>,
    page: PageContext,
    client: ClientAddr,
    Form(form): Form<PasswordForm>,
) -> Result<Response, AppError> {
    let mut shown = nickname_page(&state, &page).await?;
    let refused = if let Err(e) = passwords::check_new(&form.password, &form.confirm) {
        Some((StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
    } else if !shown.protected && !state.creation.reserved_names.allow(&client.rate_key()) {
        Some((
            StatusCode::TOO_MANY_REQUESTS,
            "Many names were reserved from your address in the last hour. Try again later.".into(),
        ))
    } else {
        None
    };
    if let Some((status, error)) = refused {
        shown.error = Some(error);
        return Ok((status, render(&shown)?).into_response());
    }
    let password = form.password;
    let hash = tokio::task::spawn_blocking(move || passwords::hash(&password))
        .await
        .map_err(|e| AppError::Internal(format!("password hashing failed: {e}")))?;
    // The same lock as logins: the claim is still this login's when the hash is stored.
    let _claiming = state.claims.lock().await?;
    let key = page.viewer.nickname.key();
    let login_id = page.viewer.login_id.clone();
    let stored = store::blocking(&state.storage, move |s| {
        let Some(mut claim) = s.claim(&key)? else {
            return Ok(false);
        };
        if claim.login_id != login_id || claim.released_at.is_some() {
            return Ok(false);
        }
        claim.password_hash = Some(hash);
        s.put_claim(&claim)?;
        Ok(true)
    })
    .await?;
    if !stored {
        // An admin removed the name meanwhile: this session is over anyway.
        return Err(AppError::NotFound);
    }
    tracing::info!(nickname = %page.viewer.nickname, "nickname protected with a password");
    shown.protected = true;
    shown.saved = true;
    Ok(render(&shown)?.into_response())
}
