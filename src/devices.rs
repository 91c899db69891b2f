//! One-time links that log another device in as the same person.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::identity::CurrentUser;

/// How long a link works after it is made.
pub const LINK_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Unused links one login may have; a new one replaces its oldest.
pub const LINKS_PER_LOGIN: usize = 3;
/// Links waiting to be used at most; making one more forgets the expired ones first.
const MAX_PENDING_LINKS: usize = 10_000;

/// Why no link was made.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Everyone's links together are at the limit (thousands of logins made some).
    #[error("Too many device links are waiting to be used. Try again in a few minutes.")]
    TooMany,
}

/// Unused links by token. In memory: a restart only means making a new link.
#[derive(Default)]
pub struct DeviceLinks {
    pending: Mutex<HashMap<String, (CurrentUser, Instant)>>,
}

impl DeviceLinks {
    /// A new one-time token for `user`, valid until `now + LINK_LIFETIME`. A login keeps at
    /// most [`LINKS_PER_LOGIN`]: the oldest goes, so one person can't use up everyone's.
    pub fn issue(&self, user: CurrentUser, now: Instant) -> Result<String, LinkError> {
        let token = random_token();
        let mut pending = self.pending.lock().expect("device links lock");
        pending.retain(|_, (_, expires)| *expires > now);
        let mut own: Vec<(Instant, String)> = pending
            .iter()
            .filter(|(_, (owner, _))| owner.login_id == user.login_id)
            .map(|(token, (_, expires))| (*expires, token.clone()))
            .collect();
        if own.len() >= LINKS_PER_LOGIN {
            own.sort();
            for (_, oldest) in &own[..=own.len() - LINKS_PER_LOGIN] {
                pending.remove(oldest);
            }
        } else if pending.len() >= MAX_PENDING_LINKS {
            return Err(LinkError::TooMany);
        }
        pending.insert(token.clone(), (user, now + LINK_LIFETIME));
        Ok(token)
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

    #[test]
    fn a_login_keeps_its_three_newest_links() {
        let links = DeviceLinks::default();
        let start = Instant::now();
        let made: Vec<String> = (0..5)
            .map(|n| {
                links
                    .issue(alice(), start + Duration::from_secs(n))
                    .unwrap()
            })
            .collect();
        let working: Vec<bool> = made
            .iter()
            .map(|token| links.peek(token, start).is_some())
            .collect();
        assert_eq!(working, [false, false, true, true, true]);
        let bob = CurrentUser::new(Nickname::parse("bob").unwrap(), "login-2".into());
        assert!(links.issue(bob, start).is_ok(), "others are not affected");
        assert_eq!(links.pending.lock().unwrap().len(), 4);
    }
}
