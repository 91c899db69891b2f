use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

use super::{SessionRecord, Storage, StoreError};
use crate::identity::{LOGIN_ID_FIELD, LoginEnd, USER_KEY};

/// Sessions kept in memory at most; past it the cache starts over (they're on disk).
const SESSION_CACHE: usize = 100_000;

/// tower-sessions on the chat's own database, so a restart logs nobody out. Records are
/// cached write-through when this process is the database's only writer: every request
/// loads its session. Instances sharing a database read it every time instead, so a session
/// ended on one is gone on all at once.
#[derive(Clone)]
pub struct SessionBackend {
    storage: Arc<dyn Storage>,
    /// `None` when other instances write sessions too.
    cache: Option<Arc<Mutex<HashMap<Id, Cached>>>>,
}

/// A session as tower-sessions wants it, decoded once rather than on every request.
struct Cached {
    record: Record,
    login_id: Option<String>,
}

impl fmt::Debug for SessionBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionBackend")
    }
}

impl SessionBackend {
    /// For the database's only writer: sessions are cached.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        SessionBackend {
            storage,
            cache: Some(Arc::default()),
        }
    }

    /// For a database other instances share: no cache.
    pub fn shared(storage: Arc<dyn Storage>) -> Self {
        SessionBackend {
            storage,
            cache: None,
        }
    }

    /// The cache, locked, if there is one.
    fn cache(&self) -> Option<std::sync::MutexGuard<'_, HashMap<Id, Cached>>> {
        self.cache
            .as_ref()
            .map(|cache| cache.lock().expect("session cache lock"))
    }

    /// Caches a record as the database keeps it: with its expiry in whole seconds, so that the
    /// cache and `login_is_live` agree on the moment it ends.
    fn remember(&self, record: &Record, login_id: Option<String>) {
        let Some(mut cache) = self.cache() else {
            return;
        };
        if cache.len() >= SESSION_CACHE {
            cache.clear();
        }
        let mut record = record.clone();
        record.expiry_date = record
            .expiry_date
            .replace_nanosecond(0)
            .unwrap_or(record.expiry_date);
        cache.insert(record.id, Cached { record, login_id });
    }

    /// Ends every session of a login, on every device it was linked to (and, sharing a
    /// database, on every instance, which closes its sockets for `why`).
    pub async fn end_login(&self, login_id: &str, why: LoginEnd) -> Result<(), StoreError> {
        if let Some(mut cache) = self.cache() {
            cache.retain(|_, cached| cached.login_id.as_deref() != Some(login_id));
        }
        let login_id = login_id.to_owned();
        super::blocking(&self.storage, move |s| {
            s.delete_login_sessions(&login_id, why)
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Storage) -> Result<T, StoreError> + Send + 'static,
    ) -> session_store::Result<T> {
        super::blocking(&self.storage, work)
            .await
            .map_err(|e| session_store::Error::Backend(e.to_string()))
    }
}

fn to_stored(record: &Record) -> session_store::Result<SessionRecord> {
    let login_id = record
        .data
        .get(USER_KEY)
        .and_then(|user| user.get(LOGIN_ID_FIELD))
        .and_then(|id| id.as_str())
        .map(str::to_owned);
    Ok(SessionRecord {
        id: record.id.to_string(),
        login_id,
        data: serde_json::to_string(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?,
        expires_at: record.expiry_date.unix_timestamp(),
    })
}

fn from_stored(stored: SessionRecord) -> session_store::Result<Record> {
    Ok(Record {
        id: stored
            .id
            .parse::<Id>()
            .map_err(|e| session_store::Error::Decode(e.to_string()))?,
        data: serde_json::from_str(&stored.data)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?,
        expiry_date: OffsetDateTime::from_unix_timestamp(stored.expires_at)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?,
    })
}

#[async_trait]
impl ExpiredDeletion for SessionBackend {
    async fn delete_expired(&self) -> session_store::Result<()> {
        let now = OffsetDateTime::now_utc();
        if let Some(mut cache) = self.cache() {
            cache.retain(|_, cached| cached.record.expiry_date > now);
        }
        let deleted = self
            .blocking(move |s| s.delete_expired_sessions(now.unix_timestamp()))
            .await?;
        if deleted > 0 {
            tracing::info!(sessions = deleted, "deleted expired sessions");
        }
        Ok(())
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        loop {
            let stored = to_stored(record)?;
            if self.blocking(move |s| s.create_session(&stored)).await? {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let stored = to_stored(record)?;
        let login_id = stored.login_id.clone();
        self.blocking(move |s| s.save_session(&stored)).await?;
        self.remember(record, login_id);
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let cached = self
            .cache()
            .and_then(|cache| cache.get(id).map(|cached| cached.record.clone()));
        let record = match cached {
            Some(record) => record,
            None => {
                let key = id.to_string();
                let Some(stored) = self.blocking(move |s| s.session(&key)).await? else {
                    return Ok(None);
                };
                let login_id = stored.login_id.clone();
                let record = from_stored(stored)?;
                self.remember(&record, login_id);
                record
            }
        };
        Ok((record.expiry_date > OffsetDateTime::now_utc()).then_some(record))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        if let Some(mut cache) = self.cache() {
            cache.remove(id);
        }
        let id = id.to_string();
        self.blocking(move |s| s.delete_session(&id)).await
    }
}
