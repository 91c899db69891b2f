//! Nickname login: who the viewer is, and the login and logout handlers.

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::Session;
use tower_sessions::session_store::ExpiredDeletion;

use crate::domain::Nickname;
use crate::error::AppError;
use crate::periodic;
use crate::security::{CspNonce, same_secret};
use crate::startup::AppState;
use crate::store::{self, ClaimRecord};
use crate::views::{Chrome, LoginPage, render};

/// Session key of the logged-in user.
pub const USER_KEY: &str = "user";
/// Field of [`CurrentUser`] that the session store indexes.
pub const LOGIN_ID_FIELD: &str = "login_id";

/// The logged-in user, as kept in the session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CurrentUser {
    pub nickname: String,
    /// Random per login: ties nickname claims, socket caps and resend dedup to this login.
    pub login_id: String,
    /// Derived from the nickname once per request rather than stored: NFKC is not free, and
    /// a page asks for it several times.
    #[serde(skip)]
    mention_key: String,
}

impl CurrentUser {
    pub fn new(nickname: &Nickname, login_id: String) -> Self {
        CurrentUser {
            nickname: nickname.as_str().to_owned(),
            login_id,
            mention_key: nickname.mention_key(),
        }
    }

    /// How mentions and direct conversations name this person.
    pub fn mention_key(&self) -> &str {
        &self.mention_key
    }

    /// The user a session holds, if its nickname still parses: a session from before a
    /// nickname rule changed counts as logged out rather than failing later.
    fn from_session(stored: CurrentUser) -> Option<CurrentUser> {
        let nickname = Nickname::parse(&stored.nickname).ok()?;
        Some(CurrentUser::new(&nickname, stored.login_id))
    }
}

/// The viewer, once read from the session, for the other extractors of the same request.
#[derive(Clone)]
struct ResolvedUser(Option<CurrentUser>);

impl<S: Send + Sync> OptionalFromRequestParts<S> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Response> {
        if let Some(ResolvedUser(user)) = parts.extensions.get::<ResolvedUser>() {
            return Ok(user.clone());
        }
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let user = session
            .get::<CurrentUser>(USER_KEY)
            .await
            .map_err(|e| AppError::from(e).into_response())?
            .and_then(CurrentUser::from_session);
        if user.is_some() {
            keep_alive(&session)
                .await
                .map_err(|e| AppError::from(e).into_response())?;
        }
        parts.extensions.insert(ResolvedUser(user.clone()));
        Ok(user)
    }
}

/// Session key of the day (days since the epoch) the session was last used on.
const SEEN_DAY_KEY: &str = "seen_day";

/// Sessions expire after inactivity, but are only written when changed: touching them once a
/// day keeps an active session alive without a disk write per request.
async fn keep_alive(session: &Session) -> Result<(), tower_sessions::session::Error> {
    let today = OffsetDateTime::now_utc().unix_timestamp() / 86_400;
    if session.get::<i64>(SEEN_DAY_KEY).await? != Some(today) {
        session.insert(SEEN_DAY_KEY, today).await?;
    }
    Ok(())
}

/// A page that needs a login: without one, the browser is sent to the login form and back.
impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match <CurrentUser as OptionalFromRequestParts<S>>::from_request_parts(parts, state).await?
        {
            Some(user) => Ok(user),
            None => {
                let here = parts.uri.path();
                let target = if here == "/" {
                    "/login".to_owned()
                } else {
                    format!("/login?next={}", urlencode(here))
                };
                Err(Redirect::to(&target).into_response())
            }
        }
    }
}

fn urlencode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
    let previous = session.get::<CurrentUser>(USER_KEY).await?;
    let user = CurrentUser::new(
        &nickname,
        tower_sessions::session::Id::default().to_string(),
    );

    // One login at a time decides who holds a nickname.
    let _claiming = state.login_lock.lock().await;
    let key = nickname.key();
    let own_login = previous.as_ref().map(|p| p.login_id.clone());
    let claim = ClaimRecord {
        nickname_key: key.clone(),
        nickname: user.nickname.clone(),
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
    session.insert(USER_KEY, &user).await?;
    // Saved with the login, so the first page or socket after it costs no session write.
    keep_alive(&session).await?;
    tracing::info!(nickname = %user.nickname, "logged in");
    Ok(Redirect::to(next.as_deref().unwrap_or("/")).into_response())
}

/// Closes a login's sockets and frees its nickname, if the claim is still that login's (a
/// re-login under the same name has already moved it to the new login).
async fn release(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    state.hub.end_login(&user.login_id);
    let key = Nickname::parse(&user.nickname)
        .map(|n| n.key())
        .unwrap_or_default();
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

/// Deletes expired sessions every `session_sweep_interval`, first at start: they log
/// nobody in, but would otherwise stay on disk for good.
pub async fn delete_expired_sessions(state: AppState) {
    let stop = state.hub.shutdown_token().clone();
    periodic::every(state.config.session_sweep_interval, &stop, || async {
        if let Err(e) = state.sessions.delete_expired().await {
            tracing::warn!(error = %e, "could not delete expired sessions");
        }
    })
    .await;
}

/// Closes the sockets of logins whose session expired unused, with 1008 as logout does,
/// checking every `expiry_check_interval`. A socket proves its session only when it opens;
/// without this, one left open would keep talking under a nickname that someone else may
/// have taken since. (The nickname is already free: a claim counts only while its login has
/// a live session.)
pub async fn end_expired_logins(state: AppState) {
    let stop = state.hub.shutdown_token().clone();
    periodic::every(state.config.expiry_check_interval, &stop, || {
        end_logins_whose_sessions_expired(&state)
    })
    .await;
}

async fn end_logins_whose_sessions_expired(state: &AppState) {
    let logins = state.hub.logins_with_sockets();
    if logins.is_empty() {
        return;
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let expired = store::blocking(&state.storage, move |storage| {
        let mut expired = Vec::new();
        for login_id in logins {
            if !storage.login_is_live(&login_id, now)? {
                expired.push(login_id);
            }
        }
        Ok(expired)
    })
    .await;
    match expired {
        Ok(expired) => {
            if !expired.is_empty() {
                tracing::info!(
                    logins = expired.len(),
                    "sessions expired; closing their sockets"
                );
            }
            for login_id in expired {
                state.hub.end_login(&login_id);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not check sessions for expiry"),
    }
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
