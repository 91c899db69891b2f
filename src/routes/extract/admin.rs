//! Who is acting as an admin: a session that redeemed the admin secret, or a machine with
//! the admin token.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use super::bearer_token;
use super::client::{ClientAddr, Guess, TooManyGuesses};
use crate::admin::ADMIN_KEY;
use crate::error::AppError;
use crate::identity::CurrentUser;
use crate::state::AppState;

/// Marks the session as an admin's, for the login it carries now.
pub async fn grant(session: &Session, user: &CurrentUser) -> Result<(), AppError> {
    // A new id with the new rights: an id known before the grant is worth nothing after.
    session.cycle_id().await?;
    session.insert(ADMIN_KEY, &user.login_id).await?;
    Ok(())
}

/// Who is acting as admin.
#[derive(Debug, Clone)]
pub enum Admin {
    /// A person whose session redeemed the admin token or setup link.
    Person(CurrentUser),
    /// A machine that sent `Authorization: Bearer <admin-token>`.
    Token,
}

impl Admin {
    /// How system lines name the admin: "alice (admin)".
    pub fn display_name(&self) -> String {
        match self {
            Admin::Person(user) => format!("{} (admin)", user.nickname),
            Admin::Token => "an admin".to_owned(),
        }
    }

    /// The acting admin's nickname, for logs; empty for a machine.
    pub fn nickname(&self) -> &str {
        match self {
            Admin::Person(user) => user.nickname.as_str(),
            Admin::Token => "",
        }
    }

    pub fn person(&self) -> Option<&CurrentUser> {
        match self {
            Admin::Person(user) => Some(user),
            Admin::Token => None,
        }
    }
}

/// What a request says about admin rights.
enum Claim {
    Admin(Admin),
    NotAdmin,
    /// A bearer token that is not the admin token.
    BadToken,
}

async fn claim(parts: &mut Parts, state: &AppState) -> Result<Claim, Response> {
    if let Some(given) = bearer_token(&parts.headers) {
        let client = ClientAddr::of(parts, &state.config.trusted_proxy);
        let guess = Guess::start(state, client)
            .await
            .map_err(TooManyGuesses::plain)?;
        if !state.admin.is_admin_token(given) {
            return Ok(Claim::BadToken);
        }
        guess.right().await;
        return Ok(Claim::Admin(Admin::Token));
    }
    // Routes outside the session layer have no session: nobody there is an admin by cookie.
    let Ok(session) = Session::from_request_parts(parts, state).await else {
        return Ok(Claim::NotAdmin);
    };
    let user =
        <CurrentUser as OptionalFromRequestParts<AppState>>::from_request_parts(parts, state)
            .await?;
    let granted = session
        .get::<String>(ADMIN_KEY)
        .await
        .map_err(|e| AppError::from(e).into_response())?;
    Ok(match user {
        Some(user) if granted.as_deref() == Some(user.login_id.as_str()) => {
            Claim::Admin(Admin::Person(user))
        }
        _ => Claim::NotAdmin,
    })
}

/// An admin, or 403 (401 for a wrong bearer token, 429 after too many).
impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match claim(parts, state).await? {
            Claim::Admin(admin) => Ok(admin),
            Claim::NotAdmin => Err(AppError::NotAdmin.into_response()),
            Claim::BadToken => Err(AppError::BadAdminToken.into_response()),
        }
    }
}

/// `Option<Admin>`: whether the viewer is an admin, for pages that show admin controls.
impl OptionalFromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Response> {
        Ok(match claim(parts, state).await? {
            Claim::Admin(admin) => Some(admin),
            Claim::NotAdmin | Claim::BadToken => None,
        })
    }
}
