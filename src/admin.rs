//! Admin rights, which come from a secret, never from a nickname (nicknames are released and
//! taken again): `--admin-token`, or without it a one-time setup link printed at first start.
//!
//! Redeeming either marks that session as an admin's (stored with the session, so it
//! survives restarts; logging out, or logging in again under another name, ends it).
//! Handlers take the `Admin` extractor (`routes::extract::admin`), which is 403 for anyone
//! else; machines may instead send `Authorization: Bearer <admin-token>`.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::security::{hex, same_secret};
use crate::store::{self, Storage, StoreResult};

/// Session key holding the login id an admin grant was made to: a grant counts only while
/// the session still carries that login.
pub const ADMIN_KEY: &str = "admin_login";
/// Setting that holds the setup token's hash (hex), or [`SETUP_USED`] once redeemed.
const SETUP_SETTING: &str = "admin_setup";
const SETUP_USED: &str = "used";

type Digest32 = [u8; 32];

/// Secrets are compared as digests, which keeps their lengths out of the timing.
fn digest(secret: &str) -> Digest32 {
    Sha256::digest(secret.as_bytes()).into()
}

/// The secrets that make an admin. Only digests are kept, in memory and on disk.
pub struct AdminSecrets {
    /// Digest of `--admin-token`.
    token: Option<Digest32>,
    /// Digest of the setup token while it is unused. Locked across its redemption, so it
    /// works exactly once.
    setup: tokio::sync::Mutex<Option<Digest32>>,
    storage: Arc<dyn Storage>,
}

impl AdminSecrets {
    /// Loads the admin secrets. Without `--admin-token`, and unless a setup link was already
    /// redeemed, it makes a new setup token (replacing any earlier, unused one) and returns
    /// it, to be printed. Blocking: call from `spawn_blocking`.
    pub fn load(
        admin_token: Option<&str>,
        storage: Arc<dyn Storage>,
    ) -> StoreResult<(AdminSecrets, Option<String>)> {
        let token = admin_token.filter(|t| !t.is_empty()).map(digest);
        let mut setup = None;
        let mut fresh = None;
        if token.is_none() && storage.setting(SETUP_SETTING)?.as_deref() != Some(SETUP_USED) {
            let secret = hex(&rand::random::<[u8; 24]>());
            let hashed = digest(&secret);
            storage.put_setting(SETUP_SETTING, &hex(&hashed))?;
            setup = Some(hashed);
            fresh = Some(secret);
        }
        Ok((
            AdminSecrets {
                token,
                setup: tokio::sync::Mutex::new(setup),
                storage,
            },
            fresh,
        ))
    }

    /// Whether `given` is the `--admin-token` (the setup token is not a bearer token).
    pub fn is_admin_token(&self, given: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|token| same_secret(token, &digest(given)))
    }

    /// Whether `given` grants admin rights: the admin token, or the setup token, which is
    /// used up (on disk too) by this.
    pub async fn redeem(&self, given: &str) -> StoreResult<bool> {
        if self.is_admin_token(given) {
            return Ok(true);
        }
        let given = digest(given);
        let mut setup = self.setup.lock().await;
        if !setup
            .as_ref()
            .is_some_and(|expected| same_secret(expected, &given))
        {
            return Ok(false);
        }
        store::blocking(&self.storage, |s| s.put_setting(SETUP_SETTING, SETUP_USED)).await?;
        *setup = None;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_only_the_same_secret() {
        assert!(same_secret(&digest("s3cret"), &digest("s3cret")));
        assert!(!same_secret(&digest("s3cret"), &digest("s3cret ")));
        assert!(!same_secret(&digest(""), &digest("s3cret")));
    }
}
