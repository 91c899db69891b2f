use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use polodb_core::bson::doc;
use polodb_core::{CollectionT, Database, IndexModel, IndexOptions, Transaction};

use super::append::{self, AppendOutcome, PendingMessage, RoomHead};
use super::backup;
use super::handle::DatabaseHandle;
use super::indexer::{self, IndexedCollections, Indexer};
use super::search_index::{self, MAX_READS, SearchCursor, SearchPage};
use super::{
    BotRecord, ClaimRecord, DedupRecord, DirectMember, FileRecord, MessageRecord, ReaderRecord,
    RoomRecord, SessionRecord, SettingRecord, Storage, StoreError, StoreResult,
};
use crate::domain::{SearchQuery, Slug};
use crate::identity::LoginEnd;

/// The database's directory under the data directory.
pub const DATABASE_DIR: &str = "chat.db";

const ROOMS: &str = "rooms";
pub(super) const MESSAGES: &str = "messages";
const DEDUP: &str = "client_ids";
const CLAIMS: &str = "nickname_claims";
const SESSIONS: &str = "sessions";
const READERS: &str = "readers";
const SETTINGS: &str = "settings";
const BOTS: &str = "bots";
const FILES: &str = "files";

/// PoloDB (RocksDB underneath) on local disk. Every commit is synced before it returns.
/// Messages are indexed for search just after their commit, by a thread of its own (see
/// `indexer`).
pub struct PoloStore {
    db: Arc<DatabaseHandle>,
    /// Stopped and joined when the store is dropped, so the database is closed once the
    /// store is gone.
    indexer: Indexer,
    /// Held from an append's commit until its messages are queued, so the queue is in
    /// commit order.
    appending: Mutex<()>,
    /// Held by every write to a room's record: PoloDB's `update_one` reads the whole
    /// document and writes it back, so two at once would lose one's change (a rename
    /// racing a commit would put back the room's old `last_id`).
    room_writes: Mutex<()>,
}

/// What the indexer reads.
const INDEXED: IndexedCollections = IndexedCollections {
    messages: MESSAGES,
    rooms: ROOMS,
};

impl PoloStore {
    pub fn open(dir: &Path) -> StoreResult<PoloStore> {
        PoloStore::open_with(dir, indexer::QUEUE_BOUND, true)
    }

    /// `queue_bound` messages wait for the indexer at most; without `start_indexer` nothing
    /// indexes them (for tests).
    fn open_with(dir: &Path, queue_bound: usize, start_indexer: bool) -> StoreResult<PoloStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", dir.display())))?;
        let db = Arc::new(DatabaseHandle::open(dir.join(DATABASE_DIR), open_database)?);
        let indexer = Indexer::start(db.clone(), INDEXED, queue_bound, start_indexer)?;
        Ok(PoloStore {
            db,
            indexer,
            appending: Mutex::new(()),
            room_writes: Mutex::new(()),
        })
    }

    /// Inserts what [`Storage::dump`] wrote, into a database that holds none of it yet.
    /// Returns the documents loaded per collection. A stream that ends before its trailer is
    /// refused: the backup was cut short.
    pub fn load(&self, dump: &mut dyn Read) -> StoreResult<BTreeMap<String, u64>> {
        self.indexer.while_loading(|| backup::load(&self.db, dump))
    }

    pub(super) fn read<T>(
        &self,
        reads: impl FnOnce(&Transaction) -> polodb_core::Result<T>,
    ) -> StoreResult<T> {
        self.db.read(reads)
    }

    fn write<T>(&self, work: impl Fn(&Database) -> polodb_core::Result<T>) -> StoreResult<T> {
        self.db.write(work)
    }

    /// Sets these fields of a room's record, and no others.
    fn set_room_fields(&self, room: &Slug, fields: polodb_core::bson::Document) -> StoreResult<()> {
        let _one_at_a_time = self.room_writes.lock().expect("room writes lock");
        self.write(|db| {
            db.collection::<RoomRecord>(ROOMS).update_one(
                doc! { "_id": room.as_str() },
                doc! { "$set": fields.clone() },
            )?;
            Ok(())
        })
    }

    fn find_one<T>(&self, collection: &str, id: &str) -> StoreResult<Option<T>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync,
    {
        self.read(|txn| txn.collection::<T>(collection).find_one(doc! { "_id": id }))
    }

    /// Every document of a small collection, or one only upgrades read whole.
    fn find_all<T>(&self, collection: &str) -> StoreResult<Vec<T>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + Unpin,
    {
        self.read(|txn| {
            txn.collection::<T>(collection)
                .find(doc! {})
                .run()?
                .collect()
        })
    }
}

/// What `Storage` reads one at a time, read whole: for moving a data directory elsewhere.
impl PoloStore {
    pub fn all_claims(&self) -> StoreResult<Vec<ClaimRecord>> {
        self.find_all(CLAIMS)
    }

    pub fn all_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
        self.find_all(SESSIONS)
    }

    pub fn all_settings(&self) -> StoreResult<Vec<SettingRecord>> {
        self.find_all(SETTINGS)
    }

    pub fn all_files(&self) -> StoreResult<Vec<FileRecord>> {
        self.find_all(FILES)
    }
}

#[cfg(test)]
impl PoloStore {
    /// Without the indexer thread: appends wait in the queue until `index_queued_now`.
    pub(super) fn open_unindexed(dir: &Path) -> StoreResult<PoloStore> {
        PoloStore::open_with(dir, indexer::QUEUE_BOUND, false)
    }

    pub(super) fn open_with_queue_bound(dir: &Path, bound: usize) -> StoreResult<PoloStore> {
        PoloStore::open_with(dir, bound, true)
    }

    pub(super) fn index_queued_now(&self) -> StoreResult<()> {
        self.indexer.index_queued_now()
    }
}

fn open_database(path: &Path) -> StoreResult<Database> {
    let db = Database::open_path(path)?;
    db.collection::<SessionRecord>(SESSIONS)
        .create_index(IndexModel {
            keys: doc! { "login_id": 1 },
            options: Some(IndexOptions {
                name: Some("login_id".into()),
                unique: None,
            }),
        })?;
    Ok(db)
}

impl Storage for PoloStore {
    fn rooms(&self) -> StoreResult<Vec<RoomRecord>> {
        self.find_all(ROOMS)
    }

    fn room(&self, slug: &Slug) -> StoreResult<Option<RoomRecord>> {
        self.find_one(ROOMS, slug.as_str())
    }

    fn create_room(&self, room: &RoomRecord) -> StoreResult<bool> {
        if self
            .find_one::<RoomRecord>(ROOMS, room.slug.as_str())?
            .is_some()
        {
            return Ok(false);
        }
        self.write(
            |db| match db.collection::<RoomRecord>(ROOMS).insert_one(room) {
                Ok(_) => Ok(true),
                // Lost a race with another creator of the same slug.
                Err(polodb_core::Error::DuplicateKey(_)) => Ok(false),
                Err(e) => Err(e),
            },
        )
    }

    fn set_topic(&self, room: &Slug, topic: &str) -> StoreResult<()> {
        self.set_room_fields(room, doc! { "topic": topic })
    }

    fn rename_room(&self, room: &Slug, name: &str) -> StoreResult<()> {
        self.set_room_fields(room, doc! { "name": name })
    }

    fn set_archived(&self, room: &Slug, archived: bool) -> StoreResult<()> {
        self.set_room_fields(room, doc! { "archived": archived })
    }

    fn set_members(&self, room: &Slug, members: &[DirectMember]) -> StoreResult<()> {
        let members = polodb_core::bson::to_bson(members)
            .map_err(|e| StoreError::Database(format!("members: {e}")))?;
        self.set_room_fields(room, doc! { "members": members })
    }

    fn append(&self, batch: &[PendingMessage]) -> StoreResult<AppendOutcome> {
        let appending = self.appending.lock().expect("appending lock");
        let room_writes = self.room_writes.lock().expect("room writes lock");
        let assignment = self.write(|db| {
            let txn = db.start_transaction()?;
            let rooms = txn.collection::<RoomRecord>(ROOMS);
            let mut heads = Vec::new();
            for slug in append::rooms_of(batch) {
                if let Some(room) = rooms.find_one(doc! { "_id": slug })? {
                    heads.push(RoomHead::from(&room));
                }
            }
            let resends = txn.collection::<DedupRecord>(DEDUP);
            let mut known = HashMap::new();
            for key in append::dedup_keys_of(batch) {
                if let Some(record) = resends.find_one(doc! { "_id": key })? {
                    known.insert(record.key, record.id.max(0) as u64);
                }
            }
            let assignment = match append::assign(batch, heads, known) {
                Ok(assignment) => assignment,
                // Nothing written: the transaction is dropped, not committed.
                Err(e) => return Ok(Err(e)),
            };
            if !assignment.messages.is_empty() {
                txn.collection::<MessageRecord>(MESSAGES)
                    .insert_many(&assignment.messages)?;
            }
            if !assignment.dedup.is_empty() {
                resends.insert_many(&assignment.dedup)?;
            }
            for head in &assignment.outcome.heads {
                rooms.update_one(doc! { "_id": head.slug.as_str() }, head_update(head)?)?;
            }
            txn.commit()?;
            Ok(Ok(assignment))
        })??;
        drop(room_writes);
        // Never waits for the indexer: a full queue drops the batch, read back later.
        self.indexer.push(&assignment.messages);
        drop(appending);
        Ok(assignment.outcome)
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

    fn rewrite(&self, messages: &[MessageRecord], rooms: &[RoomRecord]) -> StoreResult<()> {
        let _one_at_a_time = self.room_writes.lock().expect("room writes lock");
        self.write(|db| {
            let txn = db.start_transaction()?;
            for message in messages {
                replace_in(&txn, MESSAGES, &message.key, message)?;
            }
            for room in rooms {
                replace_in(&txn, ROOMS, room.slug.as_str(), room)?;
            }
            txn.commit()
        })
    }

    fn update_message(&self, message: &MessageRecord) -> StoreResult<()> {
        self.indexer.commit_change(message, |txn| {
            let old = txn
                .collection::<MessageRecord>(MESSAGES)
                .find_one(doc! { "_id": &message.key })?;
            replace_in(txn, MESSAGES, &message.key, message)?;
            Ok(old)
        })
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

    fn dedup_records(&self) -> StoreResult<Vec<DedupRecord>> {
        self.find_all(DEDUP)
    }

    fn file(&self, hash: &str) -> StoreResult<Option<FileRecord>> {
        self.find_one(FILES, hash)
    }

    fn put_file(&self, file: &FileRecord) -> StoreResult<()> {
        self.write(|db| replace(db, FILES, &file.hash, file))
    }

    fn reader(&self, login_id: &str) -> StoreResult<Option<ReaderRecord>> {
        self.find_one(READERS, login_id)
    }

    fn readers(&self) -> StoreResult<Vec<ReaderRecord>> {
        self.find_all(READERS)
    }

    fn save_reader(&self, reader: &ReaderRecord) -> StoreResult<()> {
        self.write(|db| replace(db, READERS, &reader.login_id, reader))
    }

    fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(self
            .find_one::<SettingRecord>(SETTINGS, key)?
            .map(|setting| setting.value))
    }

    fn put_setting(&self, key: &str, value: &str) -> StoreResult<()> {
        let setting = SettingRecord {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.write(|db| replace(db, SETTINGS, key, &setting))
    }

    fn claim(&self, nickname_key: &str) -> StoreResult<Option<ClaimRecord>> {
        self.find_one(CLAIMS, nickname_key)
    }

    fn put_claim(&self, claim: &ClaimRecord) -> StoreResult<()> {
        self.write(|db| replace(db, CLAIMS, &claim.nickname_key, claim))
    }

    fn delete_claim(&self, nickname_key: &str) -> StoreResult<()> {
        self.write(|db| {
            db.collection::<ClaimRecord>(CLAIMS)
                .delete_one(doc! { "_id": nickname_key })?;
            Ok(())
        })
    }

    fn bots(&self) -> StoreResult<Vec<BotRecord>> {
        self.find_all(BOTS)
    }

    fn create_bot(&self, bot: &BotRecord, claim: &ClaimRecord) -> StoreResult<()> {
        self.write(|db| {
            let txn = db.start_transaction()?;
            replace_in(&txn, CLAIMS, &claim.nickname_key, claim)?;
            txn.collection::<BotRecord>(BOTS).insert_one(bot)?;
            txn.commit()
        })
    }

    fn save_bot(&self, bot: &BotRecord) -> StoreResult<()> {
        self.write(|db| replace(db, BOTS, &bot.id, bot))
    }

    fn delete_bot(&self, id: &str, claim_key: Option<&str>) -> StoreResult<()> {
        self.write(|db| {
            let txn = db.start_transaction()?;
            txn.collection::<BotRecord>(BOTS)
                .delete_one(doc! { "_id": id })?;
            if let Some(key) = claim_key {
                txn.collection::<ClaimRecord>(CLAIMS)
                    .delete_one(doc! { "_id": key })?;
            }
            txn.commit()
        })
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
        self.write(
            |db| match db.collection::<SessionRecord>(SESSIONS).insert_one(session) {
                Ok(_) => Ok(true),
                Err(polodb_core::Error::DuplicateKey(_)) => Ok(false),
                Err(e) => Err(e),
            },
        )
    }

    fn save_session(&self, session: &SessionRecord) -> StoreResult<()> {
        self.write(|db| replace(db, SESSIONS, &session.id, session))
    }

    fn delete_session(&self, id: &str) -> StoreResult<()> {
        self.write(|db| {
            db.collection::<SessionRecord>(SESSIONS)
                .delete_one(doc! { "_id": id })?;
            Ok(())
        })
    }

    fn delete_login_sessions(&self, login_id: &str, _why: LoginEnd) -> StoreResult<()> {
        self.write(|db| {
            db.collection::<SessionRecord>(SESSIONS)
                .delete_many(doc! { "login_id": login_id })?;
            Ok(())
        })
    }

    fn delete_expired_sessions(&self, now_unix: i64) -> StoreResult<u64> {
        self.write(|db| {
            Ok(db
                .collection::<SessionRecord>(SESSIONS)
                .delete_many(doc! { "expires_at": { "$lt": now_unix } })?
                .deleted_count)
        })
    }

    fn dump(&self, out: &mut dyn Write) -> StoreResult<BTreeMap<String, u64>> {
        backup::dump(&self.db, out)
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

/// The `$set` that moves a room's record to its newest message.
fn head_update(head: &RoomHead) -> polodb_core::Result<polodb_core::bson::Document> {
    let mentions = polodb_core::bson::to_bson(&head.mentions)?;
    Ok(doc! { "$set": {
        "last_id": head.last_id,
        "counted": head.counted,
        "last_activity": head.last_activity,
        "mentions": mentions,
    } })
}

/// Writes `document` under `id`, replacing any previous one, in one commit.
fn replace<T: serde::Serialize>(
    db: &Database,
    collection: &str,
    id: &str,
    document: &T,
) -> polodb_core::Result<()> {
    let txn = db.start_transaction()?;
    replace_in(&txn, collection, id, document)?;
    txn.commit()
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

#[cfg(test)]
mod tests {
    use std::io::{self, Write};
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::{CLAIMS, PoloStore};
    use crate::store::{ClaimRecord, Storage};

    /// Holds the dump at its first write until told to go on.
    struct HeldWriter {
        started: Option<mpsc::Sender<()>>,
        go_on: mpsc::Receiver<()>,
        bytes: Vec<u8>,
    }

    impl Write for HeldWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Some(started) = self.started.take() {
                started.send(()).unwrap();
                self.go_on.recv().unwrap();
            }
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn claim(name: &str) -> ClaimRecord {
        ClaimRecord {
            nickname_key: name.into(),
            nickname: name.into(),
            login_id: format!("login-{name}"),
            released_at: None,
            password_hash: None,
        }
    }

    #[test]
    fn writes_wait_for_a_dump_reads_do_not_and_the_dump_loads_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(PoloStore::open(dir.path()).unwrap());
        store.put_claim(&claim("alice")).unwrap();

        let (started, dump_started) = mpsc::channel();
        let (go_on, held) = mpsc::channel();
        let dumping = std::thread::spawn({
            let store = store.clone();
            move || {
                let mut out = HeldWriter {
                    started: Some(started),
                    go_on: held,
                    bytes: Vec::new(),
                };
                let counts = store.dump(&mut out).unwrap();
                (counts, out.bytes)
            }
        });
        dump_started.recv().unwrap();
        let (wrote, written) = mpsc::channel();
        let writing = std::thread::spawn({
            let store = store.clone();
            move || {
                store.put_claim(&claim("bob")).unwrap();
                wrote.send(()).unwrap();
            }
        });
        assert!(
            written.recv_timeout(Duration::from_millis(300)).is_err(),
            "a write went ahead in the middle of a dump"
        );
        assert!(store.claim("alice").unwrap().is_some(), "reads go on");
        go_on.send(()).unwrap();
        let (counts, dump) = dumping.join().unwrap();
        written
            .recv_timeout(Duration::from_secs(10))
            .expect("the write goes ahead once the dump is done");
        writing.join().unwrap();
        assert_eq!(counts[CLAIMS], 1);

        let other = tempfile::tempdir().unwrap();
        let copy = PoloStore::open(other.path()).unwrap();
        let loaded = copy.load(&mut dump.as_slice()).unwrap();
        assert_eq!(loaded, counts.into_iter().filter(|(_, n)| *n > 0).collect());
        assert_eq!(copy.claim("alice").unwrap(), Some(claim("alice")));
        assert_eq!(copy.claim("bob").unwrap(), None);

        // Cut short: refused, not loaded as if whole.
        let cut = &dump[..dump.len() - 1];
        let third = tempfile::tempdir().unwrap();
        let partial = PoloStore::open(third.path()).unwrap();
        assert!(partial.load(&mut &cut[..]).is_err());
    }
}
