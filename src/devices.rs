//! One-time links that log another device in as the same person.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::now_millis;
use crate::domain::Nickname;
use crate::identity::CurrentUser;
use crate::security::token_hash;
use crate::store::{self, DeviceLinkRecord, Storage, StoreError};

/// How long a link works after it is made.
pub const LINK_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Unused links one login may have; a new one replaces its oldest.
pub const LINKS_PER_LOGIN: usize = 3;
/// Links waiting to be used at most; making one more forgets the expired ones first.
const MAX_PENDING_LINKS: usize = 10_000;

/// Why no link was made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Everyone's links together are at the limit (thousands of logins made some).
    #[error("Too many device links are waiting to be used. Try again in a few minutes.")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Unused links, wherever they are kept.
pub enum DeviceLinks {
    /// By this process alone, in memory: a restart only means making a new link.
    InMemory(PendingLinks),
    /// In the store several instances share, so a link made through one works through any.
    InStore(Arc<dyn Storage>),
}

impl DeviceLinks {
    /// A new one-time token for `user`, valid for [`LINK_LIFETIME`]. A login keeps at most
    /// [`LINKS_PER_LOGIN`]: the oldest goes, so one person can't use up everyone's.
    pub async fn issue(&self, user: CurrentUser) -> Result<String, LinkError> {
        match self {
            DeviceLinks::InMemory(links) => links.issue(user, Instant::now()),
            DeviceLinks::InStore(storage) => {
                let token = random_token();
                let link = DeviceLinkRecord {
                    token_hash: token_hash(&token),
                    login_id: user.login_id.clone(),
                    nickname: user.nickname.to_string(),
                    expires_at: now_millis() + LINK_LIFETIME.as_millis() as i64,
                };
                let kept = store::blocking(storage, move |s| {
                    s.put_device_link(&link, LINKS_PER_LOGIN, MAX_PENDING_LINKS)
                })
                .await?;
                if kept {
                    Ok(token)
                } else {
                    Err(LinkError::TooMany)
                }
            }
        }
    }

    /// Whose link this is, if it is unused and unexpired.
    pub async fn peek(&self, token: &str) -> Result<Option<CurrentUser>, StoreError> {
        match self {
            DeviceLinks::InMemory(links) => Ok(links.peek(token, Instant::now())),
            DeviceLinks::InStore(storage) => find(storage, token, false).await,
        }
    }

    /// Uses the link up: it works once.
    pub async fn take(&self, token: &str) -> Result<Option<CurrentUser>, StoreError> {
        match self {
            DeviceLinks::InMemory(links) => Ok(links.take(token, Instant::now())),
            DeviceLinks::InStore(storage) => find(storage, token, true).await,
        }
    }
}

async fn find(
    storage: &Arc<dyn Storage>,
    token: &str,
    take: bool,
) -> Result<Option<CurrentUser>, StoreError> {
    let hash = token_hash(token);
    let link = store::blocking(storage, move |s| s.device_link(&hash, now_millis(), take)).await?;
    // A nickname rule that changed since the link was made: the link logs nobody in.
    Ok(link.and_then(|link| {
        let nickname = Nickname::parse(&link.nickname).ok()?;
        Some(CurrentUser::new(nickname, link.login_id))
    }))
}

/// Unused links by token, in this process's memory.
#[derive(Default)]
pub struct PendingLinks {
    pending: Mutex<HashMap<String, (CurrentUser, Instant)>>,
}

impl PendingLinks {
    /// A new one-time token for `user`, valid until `now + LINK_LIFETIME`. A login keeps at
    /// most [`LINKS_PER_LOGIN`]: the oldest goes, so one person can't use up everyone's.
    fn issue(&self, user: CurrentUser, now: Instant) -> Result<String, LinkError> {
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
    fn peek(&self, token: &str, now: Instant) -> Option<CurrentUser> {
        let pending = self.pending.lock().expect("device links lock");
        let (user, expires) = pending.get(token)?;
        (*expires > now).then(|| user.clone())
    }

    /// Uses the link up: it works once.
    fn take(&self, token: &str, now: Instant) -> Option<CurrentUser> {
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
        let links = PendingLinks::default();
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
        let links = PendingLinks::default();
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
