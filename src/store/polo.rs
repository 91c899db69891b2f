use std::path::Path;
use std::sync::Mutex;

use polodb_core::bson::doc;
use polodb_core::{Collection, CollectionT, Database, IndexModel, IndexOptions, Transaction};

use super::search_index::{self, IndexWriter, MAX_READS, SearchCursor, SearchPage};
use super::{
    AppendBatch, ClaimRecord, DedupRecord, MessageRecord, ReaderRecord, RoomRecord, SessionRecord,
    Storage, StoreError, StoreResult,
};
use crate::domain::{SearchQuery, Slug};

const ROOMS: &str = "rooms";
pub(super) const MESSAGES: &str = "messages";
const DEDUP: &str = "client_ids";
const CLAIMS: &str = "nickname_claims";
const SESSIONS: &str = "sessions";
const READERS: &str = "readers";

/// PoloDB (RocksDB underneath) on local disk. Every commit is synced before it returns.
pub struct PoloStore {
    db: Database,
    /// Locked for each write transaction that touches messages, so the index's memory of
    /// its runs has one writer and learns only what was committed.
    index: Mutex<IndexWriter>,
}

impl PoloStore {
    pub fn open(dir: &Path) -> StoreResult<PoloStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        let db = Database::open_path(dir.join("chat.db"))?;
        db.collection::<SessionRecord>(SESSIONS)
            .create_index(IndexModel {
                keys: doc! { "login_id": 1 },
                options: Some(IndexOptions {
                    name: Some("login_id".into()),
                    unique: None,
                }),
            })?;
        Ok(PoloStore {
            db,
            index: Mutex::new(IndexWriter::default()),
        })
    }

    fn rooms_col(&self) -> Collection<RoomRecord> {
        self.db.collection(ROOMS)
    }

    /// Runs reads in a transaction that is rolled back. A read outside one auto-commits a
    /// synced transaction: an fdatasync per lookup.
    pub(super) fn read<T>(
        &self,
        reads: impl FnOnce(&Transaction) -> polodb_core::Result<T>,
    ) -> StoreResult<T> {
        let txn = self.db.start_transaction()?;
        let result = reads(&txn);
        txn.rollback()?;
        Ok(result?)
    }

    fn find_one<T>(&self, collection: &str, id: &str) -> StoreResult<Option<T>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync,
    {
        self.read(|txn| txn.collection::<T>(collection).find_one(doc! { "_id": id }))
    }
}

impl Storage for PoloStore {
    fn rooms(&self) -> StoreResult<Vec<RoomRecord>> {
        self.read(|txn| {
            txn.collection::<RoomRecord>(ROOMS)
                .find(doc! {})
                .run()?
                .collect()
        })
    }

    fn create_room(&self, room: &RoomRecord) -> StoreResult<bool> {
        if self
            .find_one::<RoomRecord>(ROOMS, room.slug.as_str())?
            .is_some()
        {
            return Ok(false);
        }
        match self.rooms_col().insert_one(room) {
            Ok(_) => Ok(true),
            // Lost a race with another creator of the same slug.
            Err(polodb_core::Error::DuplicateKey(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn set_topic(&self, room: &Slug, topic: &str) -> StoreResult<()> {
        self.rooms_col().update_one(
            doc! { "_id": room.as_str() },
            doc! { "$set": { "topic": topic } },
        )?;
        Ok(())
    }

    fn append(&self, batch: &AppendBatch) -> StoreResult<()> {
        let mut index = self.index.lock().expect("index writer lock");
        let txn = self.db.start_transaction()?;
        let mut learned = None;
        if !batch.messages.is_empty() {
            txn.collection::<MessageRecord>(MESSAGES)
                .insert_many(&batch.messages)?;
            learned = Some(index.index_new(&txn, &batch.messages)?);
        }
        if !batch.dedup.is_empty() {
            txn.collection::<DedupRecord>(DEDUP)
                .insert_many(&batch.dedup)?;
        }
        let rooms = txn.collection::<RoomRecord>(ROOMS);
        for (slug, last_id, last_activity) in &batch.room_heads {
            rooms.update_one(
                doc! { "_id": slug.as_str() },
                doc! { "$set": { "last_id": last_id, "last_activity": last_activity } },
            )?;
        }
        txn.commit()?;
        if let Some(learned) = learned {
            index.learn(learned);
        }
        Ok(())
    }

    fn messages(&self, room: &Slug, from: u64, to: u64) -> StoreResult<Vec<MessageRecord>> {
        self.read(|txn| {
            let col = txn.collection::<MessageRecord>(MESSAGES);
            let mut out = Vec::with_capacity(to.saturating_sub(from) as usize + 1);
            for id in from.max(1)..=to {
                if let Some(m) = col.find_one(doc! { "_id": MessageRecord::key_for(room, id) })? {
                    out.push(m);
                }
            }
            Ok(out)
        })
    }

    fn update_message(&self, message: &MessageRecord) -> StoreResult<()> {
        let mut index = self.index.lock().expect("index writer lock");
        let txn = self.db.start_transaction()?;
        let old = txn
            .collection::<MessageRecord>(MESSAGES)
            .find_one(doc! { "_id": &message.key })?;
        replace_in(&txn, MESSAGES, &message.key, message)?;
        let learned = index.reindex(&txn, old.as_ref(), message)?;
        txn.commit()?;
        index.learn(learned);
        Ok(())
    }

    fn search(
        &self,
        query: &SearchQuery,
        before: Option<&SearchCursor>,
        limit: usize,
        can_read: &dyn Fn(&Slug) -> bool,
    ) -> StoreResult<SearchPage> {
        self.read(|txn| {
            search_index::search(txn, MESSAGES, query, before, limit, can_read, MAX_READS)
        })
    }

    fn dedup_lookup(&self, key: &str) -> StoreResult<Option<DedupRecord>> {
        self.find_one(DEDUP, key)
    }

    fn reader(&self, login_id: &str) -> StoreResult<Option<ReaderRecord>> {
        self.find_one(READERS, login_id)
    }

    fn save_reader(&self, reader: &ReaderRecord) -> StoreResult<()> {
        replace(&self.db, READERS, &reader.login_id, reader)
    }

    fn claim(&self, nickname_key: &str) -> StoreResult<Option<ClaimRecord>> {
        self.find_one(CLAIMS, nickname_key)
    }

    fn put_claim(&self, claim: &ClaimRecord) -> StoreResult<()> {
        replace(&self.db, CLAIMS, &claim.nickname_key, claim)
    }

    fn delete_claim(&self, nickname_key: &str) -> StoreResult<()> {
        self.db
            .collection::<ClaimRecord>(CLAIMS)
            .delete_one(doc! { "_id": nickname_key })?;
        Ok(())
    }

    fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        self.find_one(SESSIONS, id)
    }

    fn create_session(&self, session: &SessionRecord) -> StoreResult<bool> {
        if self
            .find_one::<SessionRecord>(SESSIONS, &session.id)?
            .is_some()
        {
            return Ok(false);
        }
        match self
            .db
            .collection::<SessionRecord>(SESSIONS)
            .insert_one(session)
        {
            Ok(_) => Ok(true),
            Err(polodb_core::Error::DuplicateKey(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn save_session(&self, session: &SessionRecord) -> StoreResult<()> {
        replace(&self.db, SESSIONS, &session.id, session)
    }

    fn delete_session(&self, id: &str) -> StoreResult<()> {
        self.db
            .collection::<SessionRecord>(SESSIONS)
            .delete_one(doc! { "_id": id })?;
        Ok(())
    }

    fn login_is_live(&self, login_id: &str, now_unix: i64) -> StoreResult<bool> {
        self.read(|txn| {
            for session in txn
                .collection::<SessionRecord>(SESSIONS)
                .find(doc! { "login_id": login_id })
                .run()?
            {
                if session?.expires_at > now_unix {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }
}

/// Writes `document` under `id`, replacing any previous one, in one commit.
fn replace<T: serde::Serialize>(
    db: &Database,
    collection: &str,
    id: &str,
    document: &T,
) -> StoreResult<()> {
    let txn = db.start_transaction()?;
    replace_in(&txn, collection, id, document)?;
    txn.commit()?;
    Ok(())
}

fn replace_in<T: serde::Serialize>(
    txn: &Transaction,
    collection: &str,
    id: &str,
    document: &T,
) -> polodb_core::Result<()> {
    let col = txn.collection::<T>(collection);
    col.delete_one(doc! { "_id": id })?;
    col.insert_one(document)?;
    Ok(())
}
