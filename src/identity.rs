//! Who a logged-in person is: their nickname and the login that holds it.

use serde::{Deserialize, Serialize};

use crate::domain::Nickname;

/// Session key of the logged-in user.
pub const USER_KEY: &str = "user";
/// Field of [`CurrentUser`] that the session store indexes.
pub const LOGIN_ID_FIELD: &str = "login_id";

/// The logged-in user: their nickname, parsed once when the session is read, and their login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    pub nickname: Nickname,
    /// Random per login: ties nickname claims, socket caps and resend dedup to this login.
    pub login_id: String,
    /// Derived from the nickname once per request rather than stored: NFKC is not free, and
    /// a page asks for it several times.
    mention_key: String,
}

impl CurrentUser {
    pub fn new(nickname: Nickname, login_id: String) -> Self {
        CurrentUser {
            mention_key: nickname.mention_key(),
            nickname,
            login_id,
        }
    }

    /// How mentions and direct conversations name this person.
    pub fn mention_key(&self) -> &str {
        &self.mention_key
    }

    /// The form the session keeps.
    pub fn stored(&self) -> StoredUser {
        StoredUser {
            nickname: self.nickname.as_str().to_owned(),
            login_id: self.login_id.clone(),
        }
    }
}

/// The logged-in user as the session keeps it, under [`USER_KEY`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredUser {
    pub nickname: String,
    pub login_id: String,
}

impl StoredUser {
    /// The user a session holds, if its nickname still parses: a session from before a
    /// nickname rule changed counts as logged out rather than failing later.
    pub fn parse(self) -> Option<CurrentUser> {
        let nickname = Nickname::parse(&self.nickname).ok()?;
        Some(CurrentUser::new(nickname, self.login_id))
    }
}
