//! One-time links that log another device in as the same person.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::identity::CurrentUser;

/// How long a link works after it is made.
pub const LINK_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Links waiting to be used at most; making one more forgets the expired ones first.
const MAX_PENDING_LINKS: usize = 10_000;

/// Unused links by token. In memory: a restart only means making a new link.
#[derive(Default)]
pub struct DeviceLinks {
    pending: Mutex<HashMap<String, (CurrentUser, Instant)>>,
}

impl DeviceLinks {
    /// A new one-time token for `user`, valid until `now + LINK_LIFETIME`.
    pub fn issue(&self, user: CurrentUser, now: Instant) -> Option<String> {
        let token = random_token();
        let mut pending = self.pending.lock().expect("device links lock");
        pending.retain(|_, (_, expires)| *expires > now);
        if pending.len() >= MAX_PENDING_LINKS {
            return None;
        }
        pending.insert(token.clone(), (user, now + LINK_LIFETIME));
        Some(token)
    }

    /// Whose link this is, if it is unused and unexpired.
    pub fn peek(&self, token: &str, now: Instant) -> Option<CurrentUser> {
        let pending = self.pending.lock().expect("device links lock");
        let (user, expires) = pending.get(token)?;
        (*expires > now).then(|| user.clone())
    }

    /// Uses the link up: it works once.
    pub fn take(&self, token: &str, now: Instant) -> Option<CurrentUser> {
        let (user, expires) = self
            .pending
            .lock()
            .expect("device links lock")
            .remove(token)?;
        (expires > now).then_some(user)
    }
}

fn random_token() -> String {
    crate::security::hex(&rand::random::<[u8; 24]>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Nickname;

    fn alice() -> CurrentUser {
        CurrentUser::new(Nickname::parse("alice").unwrap(), "login-1".into())
    }

    #[test]
    fn a_link_works_once_and_only_for_ten_minutes() {
        let links = DeviceLinks::default();
        let start = Instant::now();
        let token = links.issue(alice(), start).unwrap();
        assert_eq!(token.len(), 48);
        assert!(
            links
                .peek(&token, start + Duration::from_secs(599))
                .is_some()
        );
        assert!(
            links
                .take(&token, start + Duration::from_secs(600))
                .is_none(),
            "expired"
        );

        let token = links.issue(alice(), start).unwrap();
        assert_eq!(
            links.take(&token, start).map(|u| u.login_id),
            Some("login-1".into())
        );
        assert!(links.take(&token, start).is_none(), "used up");
        assert!(links.peek("made-up", start).is_none());
    }
}
