//! Nickname login: the login form, invite links, logging in and out.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form};
use serde::Deserialize;
use time::OffsetDateTime;
use tower_sessions::Session;

use crate::auth::keep_alive;
use crate::domain::Nickname;
use crate::error::AppError;
use crate::identity::{CurrentUser, StoredUser, USER_KEY};
use crate::security::{CspNonce, same_secret};
use crate::state::AppState;
use crate::store::{self, ClaimRecord};
use crate::views::{Chrome, LoginPage, render};

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/join/{code}", get(join))
}

/// Only local paths are followed after login, so `next` can't send anyone off-site.
fn local_next(next: Option<String>) -> Option<String> {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\"))
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Session key set when a visitor gave the join code through an invite link.
const JOIN_CODE_GIVEN: &str = "join_code_given";

/// Whether this visitor still has to give the join code.
async fn needs_code(state: &AppState, session: &Session) -> Result<bool, AppError> {
    Ok(state.config.join_code.is_some()
        && session.get::<bool>(JOIN_CODE_GIVEN).await? != Some(true))
}

pub async fn login_form(
    State(state): State<AppState>,
    session: Session,
    viewer: Option<CurrentUser>,
    Query(query): Query<NextQuery>,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    let next = local_next(query.next);
    if viewer.is_some() {
        return Ok(Redirect::to(next.as_deref().unwrap_or("/")).into_response());
    }
    Ok(render(&LoginPage {
        page: Chrome::new("Log in", None, &nonce.0),
        nickname: String::new(),
        ask_code: needs_code(&state, &session).await?,
        error: None,
        next,
    })?
    .into_response())
}

/// An invite link: carries the join code, then shows the login form without asking for it.
pub async fn join(
    State(state): State<AppState>,
    session: Session,
    Path(code): Path<String>,
) -> Result<Response, AppError> {
    match &state.config.join_code {
        Some(expected) if same_secret(code.as_bytes(), expected.as_bytes()) => {
            session.insert(JOIN_CODE_GIVEN, true).await?;
            Ok(Redirect::to("/login").into_response())
        }
        _ => Err(AppError::NotFound),
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    nickname: String,
    #[serde(default)]
    code: String,
    next: Option<String>,
}

#[tracing::instrument(skip_all, fields(nickname = %form.nickname))]
pub async fn login(
    State(state): State<AppState>,
    session: Session,
    Extension(nonce): Extension<CspNonce>,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let next = local_next(form.next);
    let code_missing = needs_code(&state, &session).await?;
    let refuse = |error: String| -> Result<Response, AppError> {
        Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&LoginPage {
                page: Chrome::new("Log in", None, &nonce.0),
                nickname: form.nickname.clone(),
                ask_code: code_missing,
                error: Some(error),
                next: next.clone(),
            })?,
        )
            .into_response())
    };
    if code_missing
        && !state
            .config
            .join_code
            .as_deref()
            .is_some_and(|expected| same_secret(form.code.as_bytes(), expected.as_bytes()))
    {
        return refuse(
            "That join code is not right. Ask whoever invited you for the code or an invite link."
                .into(),
        );
    }
    let nickname = match Nickname::parse(&form.nickname) {
        Ok(nickname) => nickname,
        Err(e) => return refuse(e.to_string()),
    };
    let previous = session
        .get::<StoredUser>(USER_KEY)
        .await?
        .and_then(StoredUser::parse);
    let user = CurrentUser::new(
        nickname.clone(),
        tower_sessions::session::Id::default().to_string(),
    );

    // One login at a time decides who holds a nickname.
    let _claiming = state.login_lock.lock().await;
    let key = nickname.key();
    let own_login = previous.as_ref().map(|p| p.login_id.clone());
    let claim = ClaimRecord {
        nickname_key: key.clone(),
        nickname: nickname.to_string(),
        login_id: user.login_id.clone(),
    };
    // `Some(true)` when a bot has the name: bots keep theirs for good.
    let held_by_bot = store::blocking(&state.storage, move |storage| {
        if let Some(existing) = storage.claim(&key)?
            && Some(&existing.login_id) != own_login.as_ref()
            && (existing.is_bot()
                || storage.login_is_live(
                    &existing.login_id,
                    OffsetDateTime::now_utc().unix_timestamp(),
                )?)
        {
            return Ok(Some(existing.is_bot()));
        }
        storage.put_claim(&claim)?;
        Ok(None)
    })
    .await?;
    match held_by_bot {
        Some(true) => {
            return refuse(format!(
                "“{nickname}” is the name of a bot. Please pick another nickname."
            ));
        }
        Some(false) => {
            return refuse(format!(
                "“{nickname}” is taken by someone who is logged in right now. Please pick another nickname."
            ));
        }
        None => {}
    }
    if let Some(previous) = previous {
        release(&state, &previous).await?;
    }
    session.cycle_id().await?;
    session.insert(USER_KEY, user.stored()).await?;
    // Saved with the login, so the first page or socket after it costs no session write.
    keep_alive(&session).await?;
    tracing::info!(nickname = %user.nickname, "logged in");
    Ok(Redirect::to(next.as_deref().unwrap_or("/")).into_response())
}

/// Closes a login's sockets and frees its nickname, if the claim is still that login's (a
/// re-login under the same name has already moved it to the new login).
async fn release(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    state.hub.end_login(&user.login_id);
    let key = user.nickname.key();
    let login_id = user.login_id.clone();
    store::blocking(&state.storage, move |storage| {
        if storage
            .claim(&key)?
            .is_some_and(|claim| claim.login_id == login_id)
        {
            storage.delete_claim(&key)?;
        }
        Ok(())
    })
    .await?;
    Ok(())
}

pub async fn logout(
    State(state): State<AppState>,
    session: Session,
    viewer: Option<CurrentUser>,
) -> Result<Response, AppError> {
    if let Some(user) = viewer {
        release(&state, &user).await?;
        // Linked devices share the login: they are logged out with it.
        state.sessions.end_login(&user.login_id).await?;
        tracing::info!(nickname = %user.nickname, "logged out");
    }
    session.flush().await?;
    Ok(Redirect::to("/login").into_response())
}
