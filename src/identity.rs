//! Who a logged-in person is: their nickname and the login that holds it.
//!
//! The login, not the nickname string, is the identity: authorship, direct conversations,
//! mentions and read marks belong to it. A later holder of a released nickname starts a new
//! login and inherits none of it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::Nickname;
use crate::security::hex;

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
    /// The login's public handle, see [`login_handle`].
    handle: String,
}

impl CurrentUser {
    pub fn new(nickname: Nickname, login_id: String) -> Self {
        CurrentUser {
            mention_key: nickname.mention_key(),
            handle: login_handle(&login_id),
            nickname,
            login_id,
        }
    }

    /// What pages, messages and conversations name this login by.
    pub fn handle(&self) -> &str {
        &self.handle
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

/// Characters of a login handle: 80 bits of SHA-256, in hex.
const HANDLE_CHARS: usize = 20;

/// The public handle of a login (or of a bot's claim, `bot:{id}`): what messages record as
/// their author's login, what direct conversations are between and what "own" keys on. A
/// hash, so that showing it never reveals the login id the sessions are filed under.
pub fn login_handle(login_id: &str) -> String {
    let digest = Sha256::digest(login_id.as_bytes());
    hex(&digest[..HANDLE_CHARS / 2])
}

/// The login that messages and conversations from before logins were recorded go to when
/// nobody can show they are the same person: one per nickname, held by nobody.
pub fn former_holder_handle(nickname_key: &str) -> String {
    login_handle(&format!("former:{nickname_key}"))
}

/// Why a login's sockets are closed (all with 1008); the page tells the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginEnd {
    LoggedOut,
    /// An admin kicked the nickname.
    Removed,
}

impl LoginEnd {
    /// The close frame's reason, which the page's script reads.
    pub fn reason(self) -> &'static str {
        match self {
            LoginEnd::LoggedOut => "logged out",
            LoginEnd::Removed => "removed by an admin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_is_stable_short_and_different_per_login() {
        let handle = login_handle("abc");
        assert_eq!(handle, login_handle("abc"));
        assert_eq!(handle.len(), HANDLE_CHARS);
        assert!(handle.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(handle, login_handle("abd"));
        assert_ne!(former_holder_handle("bob"), login_handle("bob"));
    }
}
