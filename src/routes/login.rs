//! Nickname login: the login form, invite links, logging in and out.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form};
use serde::Deserialize;
use tower_sessions::Session;

use super::extract::client::{ClientAddr, Guess};
use super::next::local_next;
use crate::auth::keep_alive;
use crate::clock::now_millis;
use crate::domain::Nickname;
use crate::error::AppError;
use crate::identity::{CurrentUser, LoginEnd, StoredUser, USER_KEY, login_handle};
use crate::passwords;
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
        ask_password: false,
        error: None,
        next,
    })?
    .into_response())
}

/// An invite link: carries the join code, then shows the login form without asking for it.
pub async fn join(
    State(state): State<AppState>,
    session: Session,
    client: ClientAddr,
    Path(code): Path<String>,
) -> Result<Response, AppError> {
    let Some(expected) = &state.config.join_code else {
        return Err(AppError::NotFound);
    };
    let guess = Guess::start(&state, client).await?;
    if !same_secret(code.as_bytes(), expected.as_bytes()) {
        return Err(AppError::NotFound);
    }
    guess.right().await;
    session.insert(JOIN_CODE_GIVEN, true).await?;
    Ok(Redirect::to("/login").into_response())
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    nickname: String,
    #[serde(default)]
    code: String,
    /// Only for a nickname protected with a password.
    #[serde(default)]
    password: String,
    next: Option<String>,
}

#[tracing::instrument(skip_all, fields(nickname = %form.nickname))]
pub async fn login(
    State(state): State<AppState>,
    session: Session,
    client: ClientAddr,
    Extension(nonce): Extension<CspNonce>,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let next = local_next(form.next);
    let code_missing = needs_code(&state, &session).await?;
    let refuse_asking = |error: String, ask_password: bool| -> Result<Response, AppError> {
        Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&LoginPage {
                page: Chrome::new("Log in", None, &nonce.0),
                nickname: form.nickname.clone(),
                ask_code: code_missing,
                ask_password,
                error: Some(error),
                next: next.clone(),
            })?,
        )
            .into_response())
    };
    let refuse = |error: String| refuse_asking(error, false);
    if code_missing {
        let guess = Guess::start(&state, client).await?;
        if !state
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
        guess.right().await;
    }
    let nickname = match Nickname::parse(&form.nickname) {
        Ok(nickname) => nickname,
        Err(e) => return refuse(e.to_string()),
    };
    let previous = session
        .get::<StoredUser>(USER_KEY)
        .await?
        .and_then(StoredUser::parse);

    // One login at a time decides who holds a nickname, and the claim and the session that
    // keeps it live are both stored before the next one looks: a claim counts only while its
    // login's session lives, so a session saved later (with the response) would leave a
    // moment in which a second login sees the name free.
    let _claiming = state.claims.lock().await?;
    let key = nickname.key();
    let own_login = previous.as_ref().map(|p| p.login_id.clone());
    let now = now_millis();
    let fresh_login = tower_sessions::session::Id::default().to_string();
    let claim = ClaimRecord::new(&nickname, fresh_login.clone());
    let claimed = store::blocking(&state.storage, move |storage| {
        Ok(match storage.holder(&key, now)? {
            Some(existing) if Some(&existing.login_id) == own_login.as_ref() => {
                Claimed::Own(existing.login_id)
            }
            Some(existing) if existing.is_bot() => Claimed::ByBot,
            Some(existing) if existing.password_hash.is_some() => Claimed::Protected(existing),
            Some(_) => Claimed::Taken,
            None => {
                let replaced = storage
                    .claim(&key)?
                    .filter(|old| !old.is_bot())
                    .map(|old| old.login_id);
                storage.put_claim(&claim)?;
                Claimed::Fresh { replaced }
            }
        })
    })
    .await?;
    let login_id = match claimed {
        Claimed::Own(login_id) => login_id,
        Claimed::Fresh { replaced } => {
            // The name's earlier holder is someone else from now on, to those they wrote to.
            if let Some(earlier) = replaced {
                state
                    .hub
                    .nickname_passed_on(&login_handle(&earlier))
                    .await?;
            }
            fresh_login
        }
        Claimed::ByBot => {
            return refuse(format!(
                "“{nickname}” is the name of a bot. Please pick another nickname."
            ));
        }
        Claimed::Taken => {
            return refuse(format!(
                "“{nickname}” is taken by someone who is logged in right now. If that is you in another browser, open “Link another device” there (the monitor icon by your name) to use it here too; otherwise pick another nickname. A name no session uses is free again after {} days.",
                state.config.session_days
            ));
        }
        Claimed::Protected(existing) => {
            if form.password.is_empty() {
                return refuse_asking(
                    format!(
                        "“{nickname}” is protected with a password. Enter it to log in as {nickname}."
                    ),
                    true,
                );
            }
            // Wrong passwords count against both the address and the nickname.
            let by_address = Guess::start(&state, client).await?;
            let for_name = Guess::start_for(&state, format!("nickname:{}", nickname.key())).await?;
            let (password, stored) = (form.password.clone(), existing.password_hash.clone());
            let right = tokio::task::spawn_blocking(move || {
                stored.is_some_and(|stored| passwords::verify(&password, &stored))
            })
            .await
            .map_err(|e| AppError::Internal(format!("password check failed: {e}")))?;
            if !right {
                return refuse_asking(format!("That is not the password of “{nickname}”."), true);
            }
            by_address.right().await;
            for_name.right().await;
            existing.login_id
        }
    };
    let user = CurrentUser::new(nickname, login_id);
    if let Some(previous) = previous
        && previous.login_id != user.login_id
    {
        release(&state, &previous).await?;
    }
    session.cycle_id().await?;
    session.insert(USER_KEY, user.stored()).await?;
    // Saved with the login, so the first page or socket after it costs no session write.
    keep_alive(&session).await?;
    session.save().await?;
    tracing::info!(nickname = %user.nickname, "logged in");
    Ok(Redirect::to(next.as_deref().unwrap_or("/")).into_response())
}

/// Who holds a nickname, as a login finds it.
enum Claimed {
    /// This session's own login: it stays that login.
    Own(String),
    /// Nobody: it is a new login's now. `replaced` is the login that had it before, if any.
    Fresh {
        replaced: Option<String>,
    },
    ByBot,
    /// Someone else, logged in.
    Taken,
    /// A password protects it: the password logs in to its login.
    Protected(ClaimRecord),
}

/// Closes a login's sockets and frees its nickname, if the claim is still that login's (a
/// re-login under the same name has already moved it to the new login). The claim is kept,
/// marked released, so bots stay off the name for a while.
async fn release(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    state.hub.end_login(&user.login_id);
    let key = user.nickname.key();
    let login_id = user.login_id.clone();
    store::blocking(&state.storage, move |storage| {
        // A nickname protected with a password stays its login's.
        if let Some(mut claim) = storage.claim(&key)?
            && claim.login_id == login_id
            && claim.password_hash.is_none()
        {
            claim.released_at = Some(now_millis());
            storage.put_claim(&claim)?;
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
        state
            .sessions
            .end_login(&user.login_id, LoginEnd::LoggedOut)
            .await?;
        tracing::info!(nickname = %user.nickname, "logged out");
    }
    session.flush().await?;
    Ok(Redirect::to("/login").into_response())
}
