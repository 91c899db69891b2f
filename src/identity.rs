//! Who a logged-in person is: their nickname and the login that holds it.

use serde::{Deserialize, Serialize};

use crate::domain::Nickname;

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
    pub(crate) fn from_session(stored: CurrentUser) -> Option<CurrentUser> {
        let nickname = Nickname::parse(&stored.nickname).ok()?;
        Some(CurrentUser::new(&nickname, stored.login_id))
    }
}
