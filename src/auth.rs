//! Who the viewer is: the logged-in user a session holds, as an extractor, kept alive.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use time::OffsetDateTime;
use tower_sessions::Session;

use crate::error::AppError;
use crate::identity::{CurrentUser, StoredUser, USER_KEY};

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
            .get::<StoredUser>(USER_KEY)
            .await
            .map_err(|e| AppError::from(e).into_response())?
            .and_then(StoredUser::parse);
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
pub(crate) async fn keep_alive(session: &Session) -> Result<(), tower_sessions::session::Error> {
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
                // The query too: a search link comes back to its results.
                let here = parts.uri.path_and_query().map_or("/", |path| path.as_str());
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
