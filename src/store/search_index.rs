//! The search index, kept in PoloDB beside the messages: for each term, the messages that
//! hold it, so a search is a handful of point lookups rather than a scan. A word's terms are
//! its prefixes as people type them (`index_terms`), since PoloDB's range queries scan. New
//! messages are indexed just after their own commit, by the indexer thread (see `indexer`),
//! many commits' worth at once; edits and deletions move a message's postings in the edit's
//! commit.
//!
//! A commit adds one *run* per distinct term it uses: a new document `{term}#{n}` holding
//! that commit's postings of the term, inserted without reading or rewriting anything (the
//! number of runs per term is cached in memory, and probed once after a start). That keeps
//! indexing to one small insert per term per commit; rewriting a per-term document instead
//! cost several times more (see `BENCHMARKS.md`). A search counts the runs of each of its
//! terms, walks the term with the fewest newest first, and checks each candidate against the
//! message as stored now.
//!
//! A posting is the message's time and key, `{created_at}{room}/{id}` with the numbers in
//! fixed-width base 36, so postings sorted as strings are in time order (then room, then id).
//! Runs of a term are in that order too: a commit whose postings would sort before the
//! newest (a clock set back, or two commits in one millisecond) puts them into the runs
//! where they sort instead, as edits do, found by binary search over the runs' lower bounds.

use std::collections::{BTreeMap, HashMap};

use polodb_core::bson::{Document, doc};
use polodb_core::{CollectionT, Transaction};
use serde::{Deserialize, Serialize};

use super::{MessageKind, MessageRecord};
use crate::domain::{SearchQuery, Slug, index_terms};

/// Runs of prefix terms. Builds before prefixes kept whole words' runs in `search_runs`; the
/// indexer rebuilds this one from the messages and then drops that (see `indexer`).
pub(super) const RUNS: &str = "search_prefix_runs";
/// Whole words' runs, from builds before prefixes: dropped once the index is rebuilt.
const RETIRED_RUNS: &str = "search_runs";
/// Retired runs deleted per commit, so dropping a big old index holds no write back long.
const RETIRE_PAGE: usize = 4096;
/// Documents (runs and messages) one page of search reads at most before answering with what
/// it found and a cursor, so words that rarely meet can't make one request read everything.
pub const MAX_READS: usize = 2000;
/// Terms whose run count is kept in memory; past it the cache starts over.
const CACHED_TERMS: usize = 200_000;
/// Terms with up to this many times the runs of the rarest are matched by skipping through
/// their postings; commoner ones would cost more reads to skip through than reading the
/// candidate's message, which is checked for every term anyway.
const INTERSECT_WITHIN: i64 = 8;
const TIME_DIGITS: usize = 9;
const ID_DIGITS: usize = 8;

/// One page of search results.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    /// Newest first.
    pub hits: Vec<MessageRecord>,
    /// Where the next page starts, if the search stopped before the oldest posting.
    pub more: Option<SearchCursor>,
}

/// Where a page of results starts: only messages older than this posting are searched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCursor(String);

impl SearchCursor {
    /// A cursor from a URL, if it has the shape of a posting.
    pub fn parse(text: &str) -> Option<SearchCursor> {
        let time = text.get(..TIME_DIGITS)?;
        let (_, id) = text[TIME_DIGITS..].rsplit_once('/')?;
        (is_base36(time) && id.len() == ID_DIGITS && is_base36(id) && posting_key(text).is_some())
            .then(|| SearchCursor(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_base36(digits: &str) -> bool {
    digits
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

fn base36(mut n: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for digit in digits.iter_mut().rev() {
        *digit = b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(digits).expect("ASCII digits")
}

pub(super) fn posting(message: &MessageRecord) -> String {
    format!(
        "{}{}/{}",
        base36(message.created_at.max(0) as u64, TIME_DIGITS),
        message.room,
        base36(message.id.max(0) as u64, ID_DIGITS)
    )
}

/// The room and message key a posting points at.
fn posting_key(posting: &str) -> Option<(Slug, String)> {
    let (room, id) = posting.get(TIME_DIGITS..)?.rsplit_once('/')?;
    let room = Slug::parse(room)?;
    let id = u64::from_str_radix(id, 36).ok()?;
    let key = MessageRecord::key_for(&room, id);
    Some((room, key))
}

/// One commit's postings of one term; edits may add or take some away later.
#[derive(Debug, Serialize, Deserialize)]
struct Run {
    #[serde(rename = "_id")]
    key: String,
    /// Its first posting when written. Run `n` holds what sorts from its `low` up to run
    /// `n + 1`'s (run 0 also anything older), whatever edits later add or take away.
    low: String,
    /// Sorted, one per line: one string serialises far faster than an array of them.
    postings: String,
}

impl Run {
    fn postings(&self) -> Vec<&str> {
        self.postings
            .split('\n')
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// Returns whether it was not there yet.
    fn insert(&mut self, posting: &str) -> bool {
        let mut postings = self.postings();
        match postings.binary_search(&posting) {
            Ok(_) => false,
            Err(at) => {
                postings.insert(at, posting);
                self.postings = postings.join("\n");
                true
            }
        }
    }

    fn remove(&mut self, posting: &str) -> bool {
        let mut postings = self.postings();
        match postings.binary_search(&posting) {
            Ok(at) => {
                postings.remove(at);
                self.postings = postings.join("\n");
                true
            }
            Err(_) => false,
        }
    }

    /// The newest posting it holds or ever started with.
    fn newest(&self) -> String {
        self.postings()
            .last()
            .map_or_else(|| self.low.clone(), |p| (*p).to_owned())
    }
}

fn run_key(term: &str, n: i64) -> String {
    format!("{term}#{n}")
}

fn read_run(txn: &Transaction, term: &str, n: i64) -> polodb_core::Result<Option<Run>> {
    txn.collection::<Run>(RUNS)
        .find_one(doc! { "_id": run_key(term, n) })
}

fn save_run(txn: &Transaction, run: &Run) -> polodb_core::Result<()> {
    let runs = txn.collection::<Run>(RUNS);
    runs.delete_one(doc! { "_id": &run.key })?;
    runs.insert_one(run)?;
    Ok(())
}

/// How many runs a term has: runs are numbered from 0 and never deleted, so an exponential
/// then a binary search over which exist.
fn count_runs(txn: &Transaction, term: &str) -> polodb_core::Result<i64> {
    let exists = |n: i64| -> polodb_core::Result<bool> { Ok(read_run(txn, term, n)?.is_some()) };
    if !exists(0)? {
        return Ok(0);
    }
    let (mut present, mut absent) = (0, 1);
    while exists(absent)? {
        present = absent;
        absent *= 2;
    }
    while absent - present > 1 {
        let middle = (present + absent) / 2;
        if exists(middle)? {
            present = middle;
        } else {
            absent = middle;
        }
    }
    Ok(present + 1)
}

/// The run a posting sorts into among a term's `runs` (at least one).
fn run_for(
    txn: &Transaction,
    term: &str,
    runs: i64,
    posting: &str,
) -> polodb_core::Result<Option<Run>> {
    let mut walk = NewestFirst::start(txn, term, 0, None)?;
    Ok(walk.run_holding(runs - 1, posting)?.map(|(_, run)| run))
}

/// What the index knows of a term: how many runs it has and its newest posting.
#[derive(Debug, Clone)]
struct TermState {
    runs: i64,
    newest: String,
}

/// The one writer's memory of the index, so indexing a commit reads nothing in the common
/// case. Held locked for a whole write transaction; learns only from committed ones.
#[derive(Default)]
pub(super) struct IndexWriter {
    terms: HashMap<String, TermState>,
}

/// What a write transaction taught the index writer, to keep once it is committed.
#[must_use = "pass to IndexWriter::learn after the commit"]
pub(super) struct Learned {
    terms: Vec<(String, Option<TermState>)>,
}

impl IndexWriter {
    fn state(&self, txn: &Transaction, term: &str) -> polodb_core::Result<TermState> {
        if let Some(known) = self.terms.get(term) {
            return Ok(known.clone());
        }
        let runs = count_runs(txn, term)?;
        let newest = match runs {
            0 => String::new(),
            n => read_run(txn, term, n - 1)?
                .map(|run| run.newest())
                .unwrap_or_default(),
        };
        Ok(TermState { runs, newest })
    }

    /// Indexes newly stored messages: one new run per distinct term of the batch.
    pub(super) fn index_new<'m>(
        &self,
        txn: &Transaction,
        messages: impl IntoIterator<Item = &'m MessageRecord>,
    ) -> polodb_core::Result<Learned> {
        let mut by_term: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for message in messages {
            let posting = posting(message);
            for term in searchable_terms(message) {
                by_term.entry(term).or_default().push(posting.clone());
            }
        }
        let mut new_runs = Vec::new();
        let mut learned = Vec::with_capacity(by_term.len());
        for (term, mut postings) in by_term {
            postings.sort_unstable();
            let state = self.state(txn, &term)?;
            let newest = postings.last().cloned().unwrap_or_default();
            if state.runs == 0 || postings[0] > state.newest {
                new_runs.push(Run {
                    key: run_key(&term, state.runs),
                    low: postings[0].clone(),
                    postings: postings.join("\n"),
                });
                let next = TermState {
                    runs: state.runs + 1,
                    newest,
                };
                learned.push((term, Some(next)));
            } else {
                for posting in &postings {
                    add_to_runs(txn, &term, state.runs, posting)?;
                }
                let newest = newest.max(state.newest);
                learned.push((term, Some(TermState { newest, ..state })));
            }
        }
        if !new_runs.is_empty() {
            txn.collection::<Run>(RUNS).insert_many(&new_runs)?;
        }
        Ok(Learned { terms: learned })
    }

    /// Moves a changed message in the index: out of the terms it lost, into the ones it
    /// gained. A message keeps its key and time, and so its posting.
    pub(super) fn reindex(
        &self,
        txn: &Transaction,
        old: Option<&MessageRecord>,
        new: &MessageRecord,
    ) -> polodb_core::Result<Learned> {
        let before = old.map(searchable_terms).unwrap_or_default();
        let after = searchable_terms(new);
        let posting = posting(new);
        let mut changed = Vec::new();
        for term in before.iter().filter(|t| !after.contains(t)) {
            let runs = self.state(txn, term)?.runs;
            if runs > 0
                && let Some(mut run) = run_for(txn, term, runs, &posting)?
                && run.remove(&posting)
            {
                save_run(txn, &run)?;
            }
        }
        for term in after.iter().filter(|t| !before.contains(t)) {
            let runs = self.state(txn, term)?.runs;
            add_to_runs(txn, term, runs, &posting)?;
            // Its newest posting may have changed: asked of the store again next time.
            changed.push((term.clone(), None));
        }
        Ok(Learned { terms: changed })
    }

    pub(super) fn learn(&mut self, learned: Learned) {
        if self.terms.len() + learned.terms.len() > CACHED_TERMS {
            self.terms.clear();
        }
        for (term, state) in learned.terms {
            match state {
                Some(state) => self.terms.insert(term, state),
                None => self.terms.remove(&term),
            };
        }
    }
}

/// Adds a posting where it sorts among a term's runs, starting run 0 if there is none.
fn add_to_runs(txn: &Transaction, term: &str, runs: i64, posting: &str) -> polodb_core::Result<()> {
    if runs == 0 {
        txn.collection::<Run>(RUNS).insert_one(Run {
            key: run_key(term, 0),
            low: posting.to_owned(),
            postings: posting.to_owned(),
        })?;
        return Ok(());
    }
    if let Some(mut run) = run_for(txn, term, runs, posting)?
        && run.insert(posting)
    {
        save_run(txn, &run)?;
    }
    Ok(())
}

/// Deletes a page of the runs builds before prefixes left; returns whether any are left.
pub(super) fn drop_retired_runs(txn: &Transaction) -> polodb_core::Result<bool> {
    let retired = txn.collection::<Document>(RETIRED_RUNS);
    let mut keys = Vec::with_capacity(RETIRE_PAGE);
    for run in retired.find(doc! {}).run()?.take(RETIRE_PAGE) {
        if let Some(key) = run?.get("_id") {
            keys.push(key.clone());
        }
    }
    if keys.len() < RETIRE_PAGE {
        retired.drop()?;
        return Ok(false);
    }
    for key in keys {
        retired.delete_one(doc! { "_id": key })?;
    }
    Ok(true)
}

/// The terms a message is found by: none for system lines and deleted messages.
pub(super) fn searchable_terms(message: &MessageRecord) -> Vec<String> {
    if message.kind == MessageKind::User && !message.deleted {
        index_terms(&message.searchable_text())
    } else {
        Vec::new()
    }
}

/// A term's postings newest first, reading one run at a time, counting its reads.
struct NewestFirst<'a> {
    txn: &'a Transaction,
    term: String,
    /// Oldest first; taken from the end.
    current: Vec<String>,
    /// The newest run not read yet, if any.
    next_run: Option<i64>,
    reads: usize,
}

impl<'a> NewestFirst<'a> {
    /// Postings older than `before`, or all.
    fn start(
        txn: &'a Transaction,
        term: &str,
        runs: i64,
        before: Option<&SearchCursor>,
    ) -> polodb_core::Result<NewestFirst<'a>> {
        let mut walk = NewestFirst {
            txn,
            term: term.to_owned(),
            current: Vec::new(),
            next_run: (runs > 0).then(|| runs - 1),
            reads: 0,
        };
        if let Some(before) = before.map(SearchCursor::as_str)
            && walk.seek(before)?.is_some_and(|newest| newest == before)
        {
            walk.current.pop();
        }
        Ok(walk)
    }

    fn read(&mut self, n: i64) -> polodb_core::Result<Option<Run>> {
        self.reads += 1;
        read_run(self.txn, &self.term, n)
    }

    fn take_run(&mut self, n: i64, run: Run) {
        self.current = run.postings().into_iter().map(str::to_owned).collect();
        self.next_run = (n > 0).then(|| n - 1);
    }

    fn next(&mut self) -> polodb_core::Result<Option<String>> {
        loop {
            if let Some(posting) = self.current.pop() {
                return Ok(Some(posting));
            }
            let Some(n) = self.next_run else {
                return Ok(None);
            };
            match self.read(n)? {
                Some(run) => self.take_run(n, run),
                None => self.next_run = (n > 0).then(|| n - 1),
            }
        }
    }

    /// Drops the postings newer than `posting` and returns the newest one left, skipping
    /// runs that hold only newer postings without reading them all.
    fn seek(&mut self, posting: &str) -> polodb_core::Result<Option<&str>> {
        loop {
            while self.current.last().is_some_and(|p| p.as_str() > posting) {
                self.current.pop();
            }
            if !self.current.is_empty() {
                return Ok(self.current.last().map(String::as_str));
            }
            let Some(newest) = self.next_run else {
                return Ok(None);
            };
            match self.run_holding(newest, posting)? {
                Some((n, run)) => self.take_run(n, run),
                None => self.next_run = None,
            }
        }
    }

    /// Among runs `0..=newest`, the one a posting sorts into: the last whose `low` is at
    /// most it, else run 0. Gallops back from `newest` (1, 3, 7… runs), then bisects.
    fn run_holding(
        &mut self,
        newest: i64,
        posting: &str,
    ) -> polodb_core::Result<Option<(i64, Run)>> {
        let fits = |run: &Run| run.low.as_str() <= posting;
        // Runs from `too_new` on hold only postings newer than `posting`.
        let mut too_new = newest + 1;
        let mut probe = newest;
        let (mut at, mut found) = loop {
            match self.read(probe)? {
                Some(run) if fits(&run) => break (probe, run),
                Some(run) if probe == 0 => return Ok(Some((0, run))),
                None if probe == 0 => return Ok(None),
                _ => {}
            }
            too_new = probe;
            probe = (newest - (newest - probe) * 2 - 1).max(0);
        };
        let (mut low, mut high) = (at + 1, too_new);
        while low < high {
            let middle = (low + high) / 2;
            match self.read(middle)? {
                Some(run) if fits(&run) => {
                    (at, found) = (middle, run);
                    low = middle + 1;
                }
                _ => high = middle,
            }
        }
        Ok(Some((at, found)))
    }
}

/// Messages holding every term of `query` in rooms `can_read` allows, newest first. Walks
/// the postings of the term with the fewest runs, keeps only those the postings of every
/// other term about as rare hold too (skipping ahead in theirs), and checks each against
/// its message as stored now. Reads at most `max_reads` documents (`MAX_READS` outside
/// tests) before answering with a cursor.
pub(super) fn search(
    txn: &Transaction,
    messages_collection: &str,
    query: &SearchQuery,
    before: Option<&SearchCursor>,
    limit: usize,
    can_read: &dyn Fn(&Slug) -> bool,
    max_reads: usize,
) -> polodb_core::Result<SearchPage> {
    let lookups = query.index_lookups();
    let mut terms = Vec::with_capacity(lookups.len());
    for term in &lookups {
        let runs = count_runs(txn, term)?;
        if runs == 0 {
            // A term in no message: nothing holds them all.
            return Ok(SearchPage::default());
        }
        terms.push((runs, term));
    }
    terms.sort();
    let fewest = terms.first().map_or(0, |(runs, _)| *runs);
    let mut streams = Vec::with_capacity(terms.len());
    for (runs, term) in terms {
        if runs <= fewest.saturating_mul(INTERSECT_WITHIN) {
            streams.push(NewestFirst::start(txn, term, runs, before)?);
        }
    }
    let Some((driver, others)) = streams.split_first_mut() else {
        return Ok(SearchPage::default());
    };
    let messages = txn.collection::<MessageRecord>(messages_collection);
    let mut page = SearchPage::default();
    let mut message_reads = 0;
    let mut last_checked: Option<String> = None;
    'postings: while let Some(posting) = driver.next()? {
        let reads = message_reads + driver.reads + others.iter().map(|o| o.reads).sum::<usize>();
        // At least one posting per page, so paging always moves on.
        if page.hits.len() == limit || (last_checked.is_some() && reads >= max_reads) {
            page.more = last_checked.map(SearchCursor);
            break;
        }
        last_checked = Some(posting.clone());
        let Some((room, key)) = posting_key(&posting) else {
            continue;
        };
        if !can_read(&room) {
            continue;
        }
        for other in others.iter_mut() {
            match other.seek(&posting)? {
                Some(newest) if newest == posting => {}
                Some(_) => continue 'postings,
                // That term has nothing older: nothing older holds them all.
                None => break 'postings,
            }
        }
        message_reads += 1;
        if let Some(message) = messages.find_one(doc! { "_id": key })?
            && message.kind == MessageKind::User
            && !message.deleted
            && query.matches(&message.searchable_text())
        {
            page.hits.push(message);
        }
    }
    Ok(page)
}

/// Every posting of a term, from all its runs.
#[cfg(test)]
pub(super) fn stored_postings(txn: &Transaction, term: &str) -> polodb_core::Result<Vec<String>> {
    let mut all = Vec::new();
    for n in 0..count_runs(txn, term)? {
        if let Some(run) = read_run(txn, term, n)? {
            all.extend(run.postings().into_iter().map(str::to_owned));
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::polo::MESSAGES;
    use crate::store::test_backends::{Backend, TestStore, on_both_backends};
    use crate::store::{PendingMessage, PoloStore, RoomRecord};

    const START: i64 = 1_700_000_000_000;

    struct Fixture {
        store: TestStore,
        next_id: std::collections::HashMap<String, u64>,
    }

    impl Fixture {
        fn new(backend: Backend, rooms: &[&str]) -> Fixture {
            // Indexed in step with each append, to test the index itself.
            let store = TestStore::open(backend);
            for room in rooms {
                store
                    .create_room(&RoomRecord::new(
                        Slug::parse(room).unwrap(),
                        room.to_string(),
                        "",
                        START,
                    ))
                    .unwrap();
            }
            Fixture {
                store,
                next_id: Default::default(),
            }
        }

        /// Stores `(room, body, created_at)` in one commit; returns the records.
        fn append(&mut self, messages: &[(&str, String, i64)]) -> Vec<MessageRecord> {
            let mut batch: Vec<PendingMessage> = Vec::new();
            for (room, body, at) in messages {
                let id = self.next_id.entry(room.to_string()).or_insert(0);
                *id += 1;
                batch.push(
                    MessageRecord::new(
                        &Slug::parse(room).unwrap(),
                        *id,
                        MessageKind::User,
                        "alice".into(),
                        String::new(),
                        body.clone(),
                        *at,
                    )
                    .into(),
                );
            }
            self.store.append(&batch).unwrap();
            self.store.index_now();
            batch.into_iter().map(|pending| pending.record).collect()
        }

        /// PoloDB's own index, for tests of its internals.
        fn polo(&self) -> &PoloStore {
            match &self.store {
                TestStore::PoloDb(store, _) => store,
                TestStore::Postgres(..) => panic!("a test of PoloDB's index"),
            }
        }

        /// Every page of a search, following the cursors; the keys found, in order.
        fn search_all(&self, query: &str, can_read: &dyn Fn(&Slug) -> bool) -> Vec<String> {
            let query = SearchQuery::parse(query).unwrap();
            let mut keys = Vec::new();
            let mut before = None;
            loop {
                let page = self
                    .store
                    .search(&query, before.as_ref(), 50, can_read)
                    .unwrap();
                assert!(page.hits.len() <= 50);
                keys.extend(page.hits.into_iter().map(|m| m.key));
                match page.more {
                    Some(more) => before = Some(more),
                    None => return keys,
                }
            }
        }
    }

    fn everywhere(_: &Slug) -> bool {
        true
    }

    /// 330 messages over two rooms, every one with "common", every third with "third",
    /// committed in batches of 55: six runs of "common" to walk, search and edit.
    fn filled(backend: Backend) -> (Fixture, Vec<MessageRecord>) {
        let mut fixture = Fixture::new(backend, &["lobby", "other"]);
        let mut all = Vec::new();
        for batch in 0..6 {
            let messages: Vec<(&str, String, i64)> = (0..55)
                .map(|i| {
                    let n = batch * 55 + i;
                    let room = if n % 11 == 0 { "other" } else { "lobby" };
                    let third = if n % 3 == 0 { " third" } else { "" };
                    (room, format!("common message {n}{third}"), START + n)
                })
                .collect();
            all.extend(fixture.append(&messages));
        }
        (fixture, all)
    }

    fn newest_first(messages: &[MessageRecord]) -> Vec<String> {
        messages.iter().rev().map(|m| m.key.clone()).collect()
    }

    on_both_backends!(
        pages_walk_the_postings_newest_first_across_runs,
        rooms_the_viewer_cannot_read_are_left_out,
        edits_and_deletions_reach_postings_in_older_runs,
        postings_that_sort_before_the_newest_are_found_in_their_place,
    );

    fn pages_walk_the_postings_newest_first_across_runs(backend: Backend) {
        let (fixture, all) = filled(backend);
        assert_eq!(
            fixture.search_all("common", &everywhere),
            newest_first(&all)
        );
        let thirds: Vec<MessageRecord> = all
            .iter()
            .filter(|m| m.body.ends_with("third"))
            .cloned()
            .collect();
        assert_eq!(
            fixture.search_all("third COMMON", &everywhere),
            newest_first(&thirds)
        );
        assert_eq!(
            fixture.search_all("message 7", &everywhere),
            vec![all[7].key.clone()]
        );
        assert!(fixture.search_all("absent common", &everywhere).is_empty());
    }

    fn rooms_the_viewer_cannot_read_are_left_out(backend: Backend) {
        let (fixture, all) = filled(backend);
        let lobby_only: Vec<MessageRecord> = all
            .iter()
            .filter(|m| m.room.as_str() == "lobby")
            .cloned()
            .collect();
        assert_eq!(
            fixture.search_all("common", &|room| room.as_str() == "lobby"),
            newest_first(&lobby_only)
        );
    }

    fn edits_and_deletions_reach_postings_in_older_runs(backend: Backend) {
        let (fixture, mut all) = filled(backend);
        let mut edited = all[5].clone();
        edited.body = "a unique rewrite".into();
        fixture.store.update_message(&edited).unwrap();
        let mut deleted = all[200].clone();
        deleted.deleted = true;
        deleted.body.clear();
        fixture.store.update_message(&deleted).unwrap();
        let mut reacted = all[300].clone();
        reacted.reactions.push(crate::store::Reaction {
            emoji: "🎉".into(),
            by: vec!["bob".into()],
        });
        fixture.store.update_message(&reacted).unwrap();

        assert_eq!(
            fixture.search_all("unique", &everywhere),
            vec![edited.key.clone()]
        );
        let remaining: Vec<MessageRecord> = all
            .iter()
            .filter(|m| m.key != edited.key && m.key != deleted.key)
            .cloned()
            .collect();
        assert_eq!(
            fixture.search_all("common", &everywhere),
            newest_first(&remaining)
        );

        // Editing the word back puts the message in its old place, not at the front.
        edited.body = "common again".into();
        fixture.store.update_message(&edited).unwrap();
        all.remove(200);
        assert_eq!(
            fixture.search_all("common", &everywhere),
            newest_first(&all)
        );
        if backend != Backend::PoloDb {
            return;
        }
        // The index itself moved, not just what verification lets through.
        assert!(postings_of(&fixture, "unique").is_empty());
        assert!(postings_of(&fixture, "rewrite").is_empty());
        let common = postings_of(&fixture, "common");
        assert_eq!(common.len(), all.len());
        assert!(common.contains(&posting(&edited)) && !common.contains(&posting(&deleted)));
    }

    /// Every posting of a term, from all its runs.
    fn postings_of(fixture: &Fixture, term: &str) -> Vec<String> {
        fixture
            .polo()
            .read(|txn| stored_postings(txn, term))
            .unwrap()
    }

    fn postings_that_sort_before_the_newest_are_found_in_their_place(backend: Backend) {
        let (mut fixture, all) = filled(backend);
        // A clock set back, then two commits in one millisecond whose rooms sort backwards.
        let early = fixture.append(&[("lobby", "common but early".into(), START - 5)]);
        let same_ms_other = fixture.append(&[("other", "common at once".into(), START + 1000)]);
        let same_ms_lobby = fixture.append(&[("lobby", "common at once".into(), START + 1000)]);
        let mut expected = vec![same_ms_other[0].key.clone(), same_ms_lobby[0].key.clone()];
        expected.extend(newest_first(&all));
        expected.push(early[0].key.clone());
        assert_eq!(fixture.search_all("common", &everywhere), expected);

        // The same, learned from the store rather than the writer's memory.
        fixture = Fixture {
            store: fixture.store.reopen(),
            next_id: fixture.next_id,
        };
        let later = fixture.append(&[("lobby", "common once more".into(), START + 999)]);
        expected.insert(2, later[0].key.clone());
        assert_eq!(fixture.search_all("common", &everywhere), expected);
    }

    #[test]
    fn a_page_reads_a_bounded_number_of_documents_and_says_where_to_go_on() {
        let mut fixture = Fixture::new(Backend::PoloDb, &["lobby"]);
        let both = fixture.append(&[("lobby", "apples and pears".into(), START)]);
        for n in 1..=60 {
            let fruit = if n % 2 == 0 { "apples" } else { "pears" };
            fixture.append(&[("lobby", format!("{fruit} {n}"), START + n)]);
        }
        let query = SearchQuery::parse("pears apples").unwrap();
        let mut before = None;
        let mut pages = 0;
        let found = loop {
            pages += 1;
            let page = fixture
                .polo()
                .read(|txn| search(txn, MESSAGES, &query, before.as_ref(), 50, &everywhere, 10))
                .unwrap();
            if !page.hits.is_empty() || page.more.is_none() {
                break page.hits;
            }
            before = page.more;
        };
        assert!(pages > 2, "each page stops after 10 reads: {pages} pages");
        assert_eq!(
            found.into_iter().map(|m| m.key).collect::<Vec<_>>(),
            vec![both[0].key.clone()]
        );
        assert_eq!(
            fixture.search_all("pears apples", &everywhere),
            vec![both[0].key.clone()],
            "the full budget gets there in one go"
        );
    }

    #[test]
    fn cursors_from_urls_must_look_like_postings() {
        let message = MessageRecord::new(
            &Slug::lobby(),
            42,
            MessageKind::User,
            "alice".into(),
            String::new(),
            "hi".into(),
            START,
        );
        let good = posting(&message);
        assert_eq!(good, "0loyw3v28lobby/00000016");
        assert_eq!(SearchCursor::parse(&good).unwrap().as_str(), good);
        assert_eq!(posting_key(&good).unwrap().1, message.key);
        for bad in [
            "",
            "lobby/00000016",
            "0loyw3v2_lobby/00000016",
            "0loyw3v28Lobby/00000016",
            "0loyw3v28lobby/16",
            "0loyw3v28lobby/0000001G",
        ] {
            assert_eq!(SearchCursor::parse(bad), None, "{bad:?}");
        }
    }
}
