//! Indexing for search off the message commit path.
//!
//! `append` commits messages without indexing them and hands them to a bounded queue; the
//! `search-indexer` thread indexes everything queued in one commit (at most
//! `MAX_INDEX_COMMIT` messages), since the cost is one insert per distinct term per commit.
//!
//! Nothing is lost on the way: each room has a watermark, "indexed through message id N",
//! written in the same commit as the postings it covers. Whatever the store holds past a
//! watermark (left queued at a shutdown or crash, or dropped because the queue was full) is
//! read back from the store and indexed, oldest first across rooms as the queue would have
//! had it.
//!
//! The same catch-up upgrades an index written by an older build (whole words, before
//! prefixes; a marker document tells): at the first start, the index and the watermarks are
//! emptied in one commit, so the indexer reads every message back from the store, oldest
//! first, a commit at a time between the new ones, resuming from its watermarks after a
//! restart. Start-up does not wait; until it is done, older messages are not found yet.
//! Then the old runs are dropped, a page per commit.

mod queue;
mod watermarks;

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use polodb_core::bson::doc;
use polodb_core::{CollectionT, Transaction};

use super::handle::DatabaseHandle;
use super::search_index::{IndexWriter, Learned, drop_retired_runs, posting};
use super::{MessageRecord, RoomRecord, StoreError, StoreResult};
use crate::domain::Slug;
pub(super) use queue::QUEUE_BOUND;
use queue::{IndexQueue, MAX_INDEX_COMMIT, Work};
use watermarks::{forget_watermarks, set_watermark, start_current_format, watermark};

/// Pause after a failed index commit before reading back from the store.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The store's collections the indexer reads: the messages it indexes, and the rooms, whose
/// `last_id` says how far each room's messages go.
#[derive(Debug, Clone, Copy)]
pub(super) struct IndexedCollections {
    pub(super) messages: &'static str,
    pub(super) rooms: &'static str,
}

/// Indexes committed messages for search on a thread of its own. Dropped, it stops the
/// thread and waits for it; whatever is still queued is indexed from the store at the next
/// start.
pub(super) struct Indexer {
    indexing: Arc<Indexing>,
    thread: Option<JoinHandle<()>>,
}

/// What the indexer thread shares with the store's writes that touch the index.
struct Indexing {
    db: Arc<DatabaseHandle>,
    collections: IndexedCollections,
    /// Locked for each write transaction that touches the index, so its memory of its runs
    /// and the watermarks have one writer and learn only what was committed.
    index: Mutex<IndexWriter>,
    /// Stored messages waiting for the indexer.
    queue: IndexQueue,
    /// When an upgrade started building the index afresh, until it is whole, for the log.
    rebuilding: Mutex<Option<Instant>>,
    /// Whether runs of an older build may be left to drop; checked once per start.
    retired_runs: AtomicBool,
}

impl Indexer {
    /// Starts the index afresh if an older build wrote it (once), then starts the thread.
    /// `queue_bound` messages wait for it at most; without `start_thread` nothing indexes
    /// them (for tests).
    pub(super) fn start(
        db: Arc<DatabaseHandle>,
        collections: IndexedCollections,
        queue_bound: usize,
        start_thread: bool,
    ) -> StoreResult<Indexer> {
        let rebuilding = db
            .with_db(|db| start_current_format(db, collections.rooms))?
            .and_then(rebuild_started);
        let indexing = Arc::new(Indexing {
            db,
            collections,
            index: Mutex::new(IndexWriter::default()),
            queue: IndexQueue::new(queue_bound),
            rebuilding: Mutex::new(rebuilding),
            retired_runs: AtomicBool::new(true),
        });
        let thread = if start_thread {
            let indexing = indexing.clone();
            Some(
                std::thread::Builder::new()
                    .name("search-indexer".into())
                    .spawn(move || indexing.run())
                    .map_err(|e| {
                        StoreError::Database(format!("cannot start the search indexer: {e}"))
                    })?,
            )
        } else {
            None
        };
        Ok(Indexer { indexing, thread })
    }

    /// Queues committed messages, or drops them if the queue is full: never waits.
    pub(super) fn push(&self, messages: &[MessageRecord]) {
        self.indexing.queue.push(messages);
    }

    /// Commits the change of a stored message together with the move of its postings:
    /// `change` writes the message as it is now and returns it as it was.
    pub(super) fn commit_change(
        &self,
        message: &MessageRecord,
        change: impl Fn(&Transaction) -> polodb_core::Result<Option<MessageRecord>>,
    ) -> StoreResult<()> {
        let indexing = &self.indexing;
        let mut index = indexing.index.lock().expect("index writer lock");
        // The message's own indexing first, or it would put back what the edit takes out.
        indexing.index_through(&mut index, &message.room, message.id)?;
        let learned = indexing.db.write(|db| {
            let txn = db.start_transaction()?;
            let old = change(&txn)?;
            let learned = index.reindex(&txn, old.as_ref(), message)?;
            txn.commit()?;
            Ok(learned)
        })?;
        index.learn(learned);
        Ok(())
    }

    /// Runs `load`, which fills an empty database from a dump, with indexing held off; the
    /// index then goes on from the watermarks the dump brought.
    pub(super) fn while_loading<T>(&self, load: impl FnOnce() -> StoreResult<T>) -> StoreResult<T> {
        let indexing = &self.indexing;
        // The indexer waits: it must not index what is loaded before its watermarks are.
        let mut index = indexing.index.lock().expect("index writer lock");
        // The empty store's own marker would clash with the dump's.
        indexing.db.write(forget_watermarks)?;
        let loaded = load()?;
        // A dump from an older build has an index this one can't use: start it afresh.
        let rooms = indexing.collections.rooms;
        let rebuilt = indexing.db.write(|db| start_current_format(db, rooms))?;
        *indexing.rebuilding.lock().expect("rebuild lock") = rebuilt.and_then(rebuild_started);
        indexing.retired_runs.store(true, Ordering::Relaxed);
        *index = IndexWriter::default();
        // A dump taken while the index lagged has the rest to index.
        indexing.queue.fall_behind();
        Ok(loaded)
    }

    /// What the indexer thread would do with what is queued now, done here.
    #[cfg(test)]
    pub(super) fn index_queued_now(&self) -> StoreResult<()> {
        while let Some(work) = self.indexing.queue.take(false) {
            self.indexing.index_work(work)?;
        }
        Ok(())
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        // Whatever is still queued is indexed from the store at the next start.
        self.indexing.queue.close();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the search indexer panicked");
        }
    }
}

/// Logs an upgrade's rebuild of `messages`, if there are any; returns when it started.
fn rebuild_started(messages: i64) -> Option<Instant> {
    (messages > 0).then(|| {
        tracing::info!(
            messages,
            "search index from an older build: indexing every message again for prefix \
             matching; older messages are found once it gets to them"
        );
        Instant::now()
    })
}

/// One room's messages past its watermark, read from the store one at a time.
struct StoredGap {
    /// The collection they are read from.
    messages: &'static str,
    room: Slug,
    watermark: i64,
    next_id: i64,
    last_id: i64,
    /// The oldest not taken yet.
    head: Option<MessageRecord>,
}

impl StoredGap {
    fn start(
        txn: &Transaction,
        messages: &'static str,
        room: Slug,
        watermark: i64,
        last_id: i64,
    ) -> polodb_core::Result<StoredGap> {
        let mut gap = StoredGap {
            messages,
            room,
            watermark,
            next_id: watermark + 1,
            last_id,
            head: None,
        };
        gap.advance(txn)?;
        Ok(gap)
    }

    fn advance(&mut self, txn: &Transaction) -> polodb_core::Result<()> {
        let messages = txn.collection::<MessageRecord>(self.messages);
        self.head = None;
        while self.head.is_none() && self.next_id <= self.last_id {
            let key = MessageRecord::key_for(&self.room, self.next_id as u64);
            self.head = messages.find_one(doc! { "_id": key })?;
            self.next_id += 1;
        }
        Ok(())
    }

    /// Its new watermark once what was taken is indexed.
    fn indexed_through(&self) -> i64 {
        self.head.as_ref().map_or(self.last_id, |next| next.id - 1)
    }
}

impl Indexing {
    /// The indexer thread: until the store closes, whatever is queued or left behind.
    fn run(&self) {
        while let Some(work) = self.queue.take(true) {
            if let Err(e) = self.index_work(work) {
                tracing::warn!(error = %e, "indexing for search failed; reading back from the store");
                self.queue.fall_behind();
                self.queue.pause(RETRY_AFTER);
            }
        }
    }

    fn index_work(&self, work: Work) -> StoreResult<()> {
        match work {
            Work::CatchUp => self.catch_up(),
            Work::Index(messages) => self.index_queued(&messages),
        }
    }

    /// Indexes what the store holds past the watermarks, one commit at a time so edits get
    /// in between; then drops a page of an older build's runs, if any are left, coming back
    /// for the next after what was queued meanwhile.
    fn catch_up(&self) -> StoreResult<()> {
        while !self.queue.is_closed() {
            let mut index = self.index.lock().expect("index writer lock");
            if !self.index_stored(&mut index, None)? {
                break;
            }
        }
        if self.queue.is_closed() {
            return Ok(());
        }
        if let Some(started) = self.rebuilding.lock().expect("rebuild lock").take() {
            let seconds = started.elapsed().as_secs_f64();
            tracing::info!(seconds, "search index rebuilt for prefix matching");
        }
        if self.retired_runs.load(Ordering::Relaxed) {
            let left = self.db.write(|db| {
                let txn = db.start_transaction()?;
                let left = drop_retired_runs(&txn)?;
                txn.commit()?;
                Ok(left)
            })?;
            self.retired_runs.store(left, Ordering::Relaxed);
            if left {
                self.queue.fall_behind();
            }
        }
        Ok(())
    }

    /// Indexes, from the store, everything up to message `id` of `room` that is not yet.
    fn index_through(&self, index: &mut IndexWriter, room: &Slug, id: i64) -> StoreResult<()> {
        while self.index_stored(index, Some((room, id)))? {}
        Ok(())
    }

    /// Indexes queued messages in one commit, each room's from just past its watermark (what
    /// is at or below it was read back from the store already). If a room's messages don't
    /// follow on from its watermark, a batch before them was dropped: all are left to be
    /// read back from the store, where they come in order.
    fn index_queued(&self, queued: &[MessageRecord]) -> StoreResult<()> {
        let mut index = self.index.lock().expect("index writer lock");
        let (learned, gap) = self.db.write(|db| {
            let txn = db.start_transaction()?;
            // Per room: its watermark, and the id indexing goes on from.
            let mut next_ids: HashMap<&Slug, (i64, i64)> = HashMap::new();
            let mut fresh = Vec::with_capacity(queued.len());
            for message in queued {
                let (_, next) = match next_ids.entry(&message.room) {
                    Entry::Occupied(known) => known.into_mut(),
                    Entry::Vacant(new) => {
                        let through = watermark(&txn, &message.room)?;
                        new.insert((through, through + 1))
                    }
                };
                if message.id > *next {
                    txn.rollback()?;
                    return Ok((None, true));
                }
                if message.id == *next {
                    fresh.push(message);
                    *next += 1;
                }
            }
            if fresh.is_empty() {
                txn.rollback()?;
                return Ok((None, false));
            }
            let learned = index.index_new(&txn, fresh)?;
            for (room, (through, next)) in &next_ids {
                if next - 1 > *through {
                    set_watermark(&txn, room.as_str(), next - 1)?;
                }
            }
            txn.commit()?;
            Ok((Some(learned), false))
        })?;
        if let Some(learned) = learned {
            index.learn(learned);
        }
        if gap {
            self.queue.fall_behind();
        }
        Ok(())
    }

    /// Indexes, in one commit of at most `MAX_INDEX_COMMIT` messages, what the store holds
    /// past the watermarks: of every room up to its `last_id`, oldest first across rooms,
    /// or with `until` only as far as that message. Returns whether there is more to do.
    fn index_stored(
        &self,
        index: &mut IndexWriter,
        until: Option<(&Slug, i64)>,
    ) -> StoreResult<bool> {
        let (learned, more): (Option<Learned>, bool) = self.db.write(|db| {
            let txn = db.start_transaction()?;
            // An edit of a message already indexed (the usual case) reads nothing more.
            if let Some((room, id)) = until
                && watermark(&txn, room)? >= id
            {
                txn.rollback()?;
                return Ok((None, false));
            }
            let mut last_ids: Vec<(Slug, i64)> = Vec::new();
            for room in txn
                .collection::<RoomRecord>(self.collections.rooms)
                .find(doc! {})
                .run()?
            {
                let room = room?;
                last_ids.push((room.slug, room.last_id));
            }
            if let Some((room, id)) = until {
                match last_ids.iter_mut().find(|(slug, _)| slug == room) {
                    Some((_, last_id)) => *last_id = (*last_id).max(id),
                    None => last_ids.push((room.clone(), id)),
                }
            }
            let mut gaps = Vec::new();
            for (room, last_id) in last_ids {
                let through = watermark(&txn, &room)?;
                if through < last_id {
                    gaps.push(StoredGap::start(
                        &txn,
                        self.collections.messages,
                        room,
                        through,
                        last_id,
                    )?);
                }
            }
            if gaps.is_empty() {
                txn.rollback()?;
                return Ok((None, false));
            }
            // Oldest first, in the postings' order, so each term's run is a new newest one.
            let mut oldest: BinaryHeap<Reverse<(String, usize)>> = gaps
                .iter()
                .enumerate()
                .filter_map(|(at, gap)| gap.head.as_ref().map(|m| Reverse((posting(m), at))))
                .collect();
            let mut found = Vec::new();
            while found.len() < MAX_INDEX_COMMIT
                && let Some(Reverse((_, at))) = oldest.pop()
            {
                let gap = &mut gaps[at];
                let message = gap.head.take().expect("a gap in the heap has a head");
                gap.advance(&txn)?;
                if let Some(next) = &gap.head {
                    oldest.push(Reverse((posting(next), at)));
                }
                let reached =
                    until.is_some_and(|(room, id)| *room == message.room && message.id >= id);
                found.push(message);
                if reached {
                    break;
                }
            }
            let learned = index.index_new(&txn, &found)?;
            for gap in &gaps {
                if gap.indexed_through() > gap.watermark {
                    set_watermark(&txn, gap.room.as_str(), gap.indexed_through())?;
                }
            }
            txn.commit()?;
            let more = gaps.iter().any(|gap| match until {
                Some((room, id)) => gap.room == *room && gap.indexed_through() < id,
                None => gap.head.is_some(),
            });
            Ok((Some(learned), more))
        })?;
        if let Some(learned) = learned {
            index.learn(learned);
        }
        Ok(more)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use polodb_core::Database;
    use polodb_core::bson::Document;

    use super::*;
    use crate::domain::SearchQuery;
    use crate::store::search_index::RUNS;
    use crate::store::search_index::stored_postings;
    use crate::store::{DATABASE_DIR, MessageKind, PendingMessage, PoloStore, Storage};

    const START: i64 = 1_700_000_000_000;

    /// Rooms written to the way the committer does, knowing the ids the store will give.
    struct Rooms {
        next_ids: HashMap<String, u64>,
        clock: i64,
    }

    impl Rooms {
        fn create(store: &PoloStore, slugs: &[&str]) -> Rooms {
            for slug in slugs {
                store
                    .create_room(&RoomRecord::new(
                        Slug::parse(slug).unwrap(),
                        slug.to_string(),
                        "",
                        START,
                    ))
                    .unwrap();
            }
            Rooms {
                next_ids: HashMap::new(),
                clock: START,
            }
        }

        /// Stores `(room, body)` messages in one commit.
        fn append(&mut self, store: &PoloStore, messages: &[(&str, &str)]) -> Vec<MessageRecord> {
            self.clock += 1;
            let mut batch: Vec<PendingMessage> = Vec::new();
            for (room, body) in messages {
                let id = self.next_ids.entry(room.to_string()).or_insert(0);
                *id += 1;
                batch.push(
                    MessageRecord::new(
                        &Slug::parse(room).unwrap(),
                        *id,
                        MessageKind::User,
                        "alice".into(),
                        String::new(),
                        body.to_string(),
                        self.clock,
                    )
                    .into(),
                );
            }
            store.append(&batch).unwrap();
            batch.into_iter().map(|pending| pending.record).collect()
        }
    }

    /// The keys of every message search finds, newest first, following the pages.
    fn found(store: &PoloStore, query: &str) -> Vec<String> {
        let query = SearchQuery::parse(query).unwrap();
        let mut keys = Vec::new();
        let mut before = None;
        loop {
            let page = store
                .search(&query, before.as_ref(), 50, &|_| true)
                .unwrap();
            keys.extend(page.hits.into_iter().map(|m| m.key));
            match page.more {
                Some(more) => before = Some(more),
                None => return keys,
            }
        }
    }

    /// As search lists them: by time, then room, then id, newest first.
    fn newest_first(messages: &[MessageRecord]) -> Vec<String> {
        let mut sorted: Vec<&MessageRecord> = messages.iter().collect();
        sorted.sort_by_key(|m| Reverse(posting(m)));
        sorted.into_iter().map(|m| m.key.clone()).collect()
    }

    fn postings(store: &PoloStore, term: &str) -> Vec<String> {
        store.read(|txn| stored_postings(txn, term)).unwrap()
    }

    fn watermark_of(store: &PoloStore, room: &str) -> i64 {
        store
            .read(|txn| watermark(txn, &Slug::parse(room).unwrap()))
            .unwrap()
    }

    /// Waits for `done`, since the indexer works on its own time.
    fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn appended_messages_are_found_once_the_indexer_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = PoloStore::open(dir.path()).unwrap();
        let mut rooms = Rooms::create(&store, &["lobby", "other"]);
        let mut sent = Vec::new();
        for n in 0..3 {
            sent.extend(rooms.append(
                &store,
                &[
                    ("lobby", &format!("hello lobby {n}")),
                    ("other", "hello other"),
                ],
            ));
        }
        eventually("all six found", || found(&store, "hello").len() == 6);
        assert_eq!(found(&store, "hello"), newest_first(&sent));
        assert_eq!(postings(&store, "hello").len(), 6);
        assert_eq!(
            (watermark_of(&store, "lobby"), watermark_of(&store, "other")),
            (3, 3)
        );
    }

    #[test]
    fn messages_left_unindexed_are_indexed_from_the_store_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = PoloStore::open_unindexed(dir.path()).unwrap();
        let mut rooms = Rooms::create(&store, &["lobby", "other"]);
        let mut sent = rooms.append(&store, &[("lobby", "the lighthouse")]);
        sent.extend(rooms.append(
            &store,
            &[("other", "a lighthouse"), ("lobby", "lighthouse again")],
        ));
        assert!(found(&store, "lighthouse").is_empty(), "not indexed yet");
        // As a crash would: the queue is gone with the process.
        drop(store);

        let store = PoloStore::open(dir.path()).unwrap();
        eventually("found without anything new written", || {
            found(&store, "lighthouse").len() == 3
        });
        assert_eq!(found(&store, "lighthouse"), newest_first(&sent));
        // Indexed under its prefixes, up to 8 characters.
        assert_eq!(postings(&store, "lighthou").len(), 3);
        assert_eq!(
            (watermark_of(&store, "lobby"), watermark_of(&store, "other")),
            (2, 1)
        );
    }

    /// Leaves the database as the build before prefixes did: whole words' runs in their own
    /// collection (`runs` of them), every room marked as indexed through its `last_id`, and
    /// the marker of that build.
    fn as_before_prefixes(dir: &std::path::Path, last_ids: &[(&str, i64)], runs: usize) {
        let db = Database::open_path(dir.join(DATABASE_DIR)).unwrap();
        forget_watermarks(&db).unwrap();
        db.collection::<Document>(RUNS).drop().unwrap();
        let marks = db.collection::<Document>("search_indexed");
        marks
            .insert_one(doc! { "_id": "#watermarks", "id": 0 })
            .unwrap();
        for (room, id) in last_ids {
            marks.insert_one(doc! { "_id": *room, "id": *id }).unwrap();
        }
        let old_runs: Vec<Document> = (0..runs)
            .map(|n| doc! { "_id": format!("word{n}#0"), "low": "", "postings": "" })
            .collect();
        db.collection::<Document>("search_runs")
            .insert_many(old_runs)
            .unwrap();
    }

    #[test]
    fn an_index_from_before_prefixes_is_built_afresh_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = PoloStore::open_unindexed(dir.path()).unwrap();
        let mut rooms = Rooms::create(&store, &["lobby", "other"]);
        let mut sent = rooms.append(
            &store,
            &[("lobby", "Looking good"), ("other", "the lookout")],
        );
        store.index_queued_now().unwrap();
        // Stored but not indexed when the old build stopped: found after the upgrade too.
        sent.extend(rooms.append(&store, &[("lobby", "look here")]));
        drop(store);
        // More than a page of old runs, so dropping them takes two commits.
        as_before_prefixes(dir.path(), &[("lobby", 1), ("other", 1)], 5000);

        let store = PoloStore::open(dir.path()).unwrap();
        eventually("every message found by its prefixes", || {
            found(&store, "loo").len() == 3
        });
        assert_eq!(found(&store, "LOOK"), newest_first(&sent));
        assert_eq!(found(&store, "looki"), newest_first(&sent[..1]));
        assert!(
            found(&store, "lo").is_empty(),
            "short terms find whole words only"
        );
        assert_eq!(
            postings(&store, "loo").len(),
            3,
            "each message indexed once"
        );
        assert_eq!(
            (watermark_of(&store, "lobby"), watermark_of(&store, "other")),
            (2, 1)
        );
        let retired_left = || {
            store
                .read(|txn| txn.collection::<Document>("search_runs").count_documents())
                .unwrap()
        };
        eventually("the old runs dropped", || retired_left() == 0);

        // Upgraded once: a restart keeps the index it built, and goes on from it.
        drop(store);
        let store = PoloStore::open(dir.path()).unwrap();
        let more = rooms.append(&store, &[("other", "lookalike")]);
        eventually("the new message found", || {
            found(&store, "lookal") == newest_first(&more)
        });
        assert_eq!(postings(&store, "loo").len(), 4);
    }

    #[test]
    fn an_edit_right_after_the_append_replaces_the_words_it_was_indexed_by() {
        let dir = tempfile::tempdir().unwrap();
        let store = PoloStore::open_unindexed(dir.path()).unwrap();
        let mut rooms = Rooms::create(&store, &["lobby"]);
        // The catch-up on opening done, the queued copy is what the indexer will meet.
        store.index_queued_now().unwrap();
        let mut message = rooms
            .append(&store, &[("lobby", "meet at the harbour")])
            .remove(0);
        message.body = "meet at the station".into();
        store.update_message(&message).unwrap();
        // The indexer gets to the queued copy, as first sent, only now.
        store.index_queued_now().unwrap();

        assert_eq!(found(&store, "station"), vec![message.key.clone()]);
        assert!(found(&store, "harbour").is_empty());
        assert!(postings(&store, "harbour").is_empty(), "{message:?}");
        assert_eq!(postings(&store, "station").len(), 1);
        assert_eq!(postings(&store, "meet").len(), 1);
    }

    #[test]
    fn batches_dropped_from_a_full_queue_are_read_back_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        // Batches of three never fit; single messages do, unless one waits already.
        let store = PoloStore::open_with_queue_bound(dir.path(), 2).unwrap();
        let mut rooms = Rooms::create(&store, &["lobby", "other"]);
        let mut sent = Vec::new();
        for n in 0..40 {
            let body = format!("ping {n}");
            let batch: &[(&str, &str)] = if n % 2 == 0 {
                &[("lobby", &body)]
            } else {
                &[("lobby", &body), ("other", &body), ("lobby", &body)]
            };
            sent.extend(rooms.append(&store, batch));
        }
        eventually("every message found", || {
            found(&store, "ping").len() == sent.len()
        });
        assert_eq!(found(&store, "ping"), newest_first(&sent));
        assert_eq!(postings(&store, "ping").len(), sent.len());
        assert_eq!(
            (watermark_of(&store, "lobby"), watermark_of(&store, "other")),
            (60, 20)
        );
    }
}
