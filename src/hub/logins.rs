//! Each login's open sockets: the per-login cap, and ending them all at logout.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use super::{Hub, MAX_SOCKETS_PER_LOGIN};
use crate::identity::LoginEnd;

pub(super) struct LoginSockets {
    open: usize,
    ended: CancellationToken,
    /// Why the login ended, for its sockets' close frames; set just before `ended` fires.
    why: Arc<OnceLock<LoginEnd>>,
}

impl Hub {
    /// Counts a new socket for a login, or refuses it over the cap. The guard uncounts it.
    pub fn open_socket(self: &Arc<Self>, login_id: &str) -> Option<SocketGuard> {
        let mut logins = self.logins.lock().expect("logins lock");
        let entry = logins
            .entry(login_id.to_owned())
            .or_insert_with(|| LoginSockets {
                open: 0,
                ended: CancellationToken::new(),
                why: Arc::new(OnceLock::new()),
            });
        if entry.open >= MAX_SOCKETS_PER_LOGIN {
            return None;
        }
        entry.open += 1;
        self.metrics.sockets.increment(1.0);
        Some(SocketGuard {
            hub: self.clone(),
            login_id: login_id.to_owned(),
            ended: entry.ended.clone(),
            why: entry.why.clone(),
        })
    }

    /// The logins that have sockets open.
    pub fn logins_with_sockets(&self) -> Vec<String> {
        self.logins
            .lock()
            .expect("logins lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Ends every socket of a login (logout): they close with 1008.
    pub fn end_login(&self, login_id: &str) {
        self.end_login_because(login_id, LoginEnd::LoggedOut);
    }

    /// Ends every socket of a login with 1008 and `why` as the close reason.
    pub fn end_login_because(&self, login_id: &str, why: LoginEnd) {
        if let Some(entry) = self.logins.lock().expect("logins lock").remove(login_id) {
            let _ = entry.why.set(why);
            entry.ended.cancel();
        }
    }
}

/// One counted socket of a login.
pub struct SocketGuard {
    hub: Arc<Hub>,
    login_id: String,
    ended: CancellationToken,
    why: Arc<OnceLock<LoginEnd>>,
}

impl SocketGuard {
    /// Cancelled when the login ends.
    pub fn ended(&self) -> &CancellationToken {
        &self.ended
    }

    /// Why the login ended, once [`SocketGuard::ended`] has fired.
    pub fn end_reason(&self) -> &'static str {
        self.why
            .get()
            .copied()
            .unwrap_or(LoginEnd::LoggedOut)
            .reason()
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.hub.metrics.sockets.decrement(1.0);
        let mut logins = self.hub.logins.lock().expect("logins lock");
        if let Some(entry) = logins.get_mut(&self.login_id)
            && !entry.ended.is_cancelled()
        {
            entry.open -= 1;
            if entry.open == 0 {
                logins.remove(&self.login_id);
            }
        }
    }
}
