//! Background upkeep of logins and sessions: expired sessions deleted, their sockets closed.

use time::OffsetDateTime;
use tower_sessions::session_store::ExpiredDeletion;

use crate::periodic;
use crate::state::AppState;
use crate::store;

/// Deletes expired sessions every `session_sweep_interval`, first at start: they log
/// nobody in, but would otherwise stay on disk for good.
pub async fn delete_expired_sessions(state: AppState) {
    let stop = state.shutdown.clone();
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
    let stop = state.shutdown.clone();
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
