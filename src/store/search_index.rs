//! The search index, kept in PoloDB beside the messages and written in the same
//! transactions: for each term, the messages that hold it, as postings in time order, so a
//! search is a handful of point lookups rather than a scan.
//!
//! A term's newest postings sit in its head document (`search_terms`, keyed by the term)
//! with its count. Once the head holds `CHUNK` postings they move into a sealed chunk
//! (`search_chunks`, keyed `{term}#{n}`). Storing a batch therefore reads and rewrites one
//! small document per distinct term, however common the term. A search walks the rarest
//! term's postings newest first and checks each candidate against its message.
//!
//! A posting is `{created_at:015}|{room}/{id:020}`: sorted as strings, postings are in time
//! order (then room, then id). An edit finds a message's place again from that alone, by
//! binary search over the sealed chunks' lower bounds.

use std::collections::BTreeMap;

use polodb_core::bson::doc;
use polodb_core::{CollectionT, Transaction};
use serde::{Deserialize, Serialize};

use super::{MessageKind, MessageRecord};
use crate::domain::{SearchQuery, Slug, index_terms};

const TERMS: &str = "search_terms";
const CHUNKS: &str = "search_chunks";
/// Postings per sealed chunk. Bigger chunks mean fewer reads per search, but a bigger head
/// rewritten by every commit that uses the term.
const CHUNK: usize = 128;
/// Candidates one search checks at most before answering with what it found and a cursor,
/// so words that rarely meet can't make one request read the whole index.
pub const MAX_CANDIDATES: usize = 2000;

/// One page of search results.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    /// Newest first.
    pub hits: Vec<MessageRecord>,
    /// Where the next page starts, if the search stopped before the oldest posting.
    pub more: Option<SearchCursor>,
}

/// Where a page of results starts: only messages older than this are searched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCursor(String);

impl SearchCursor {
    /// A cursor from a URL, if it has the shape of a posting.
    pub fn parse(text: &str) -> Option<SearchCursor> {
        let (at, key) = text.split_once('|')?;
        let (room, id) = key.rsplit_once('/')?;
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        (digits(at, 15) && digits(id, 20) && Slug::parse(room).is_some())
            .then(|| SearchCursor(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct TermHead {
    #[serde(rename = "_id")]
    term: String,
    /// Postings of the term, in the head and the sealed chunks together.
    count: i64,
    /// Sealed chunks, numbered from 0.
    sealed: i64,
    /// The newest sealed posting: anything up to it belongs in a sealed chunk.
    floor: Option<String>,
    /// The newest postings, oldest first.
    postings: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Chunk {
    #[serde(rename = "_id")]
    key: String,
    /// Its first posting when sealed. Chunk `n` holds what sorts from its `low` up to the next
    /// chunk's (chunk 0 also anything older), whatever edits later add or take away.
    low: String,
    postings: Vec<String>,
}

fn posting(message: &MessageRecord) -> String {
    format!("{:015}|{}", message.created_at.max(0), message.key)
}

fn chunk_key(term: &str, n: i64) -> String {
    format!("{term}#{n}")
}

/// The terms a message is found by: none for system lines and deleted messages.
fn searchable_terms(message: &MessageRecord) -> Vec<String> {
    if message.kind == MessageKind::User && !message.deleted {
        index_terms(&message.body)
    } else {
        Vec::new()
    }
}

/// Indexes newly stored messages, one head update per distinct term of the batch.
pub(super) fn index_new(txn: &Transaction, messages: &[MessageRecord]) -> polodb_core::Result<()> {
    let mut by_term: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in messages {
        let posting = posting(message);
        for term in searchable_terms(message) {
            by_term.entry(term).or_default().push(posting.clone());
        }
    }
    for (term, mut postings) in by_term {
        postings.sort_unstable();
        add_postings(txn, &term, postings)?;
    }
    Ok(())
}

/// Moves a changed message in the index: out of the terms it lost, into the ones it gained.
/// A message keeps its key and time, and so its posting.
pub(super) fn reindex(
    txn: &Transaction,
    old: Option<&MessageRecord>,
    new: &MessageRecord,
) -> polodb_core::Result<()> {
    let before = old.map(searchable_terms).unwrap_or_default();
    let after = searchable_terms(new);
    let posting = posting(new);
    for term in before.iter().filter(|t| !after.contains(t)) {
        remove_posting(txn, term, &posting)?;
    }
    for term in after.iter().filter(|t| !before.contains(t)) {
        add_postings(txn, term, vec![posting.clone()])?;
    }
    Ok(())
}

/// Adds `postings` (sorted) to a term: into the head, or, older than the head (an edit, or
/// a clock set back), into the sealed chunk where they sort.
fn add_postings(txn: &Transaction, term: &str, postings: Vec<String>) -> polodb_core::Result<()> {
    let found = txn
        .collection::<TermHead>(TERMS)
        .find_one(doc! { "_id": term })?;
    let existed = found.is_some();
    let mut head = found.unwrap_or_else(|| TermHead {
        term: term.to_owned(),
        count: 0,
        sealed: 0,
        floor: None,
        postings: Vec::new(),
    });
    for posting in postings {
        let added = if head.floor.as_ref().is_some_and(|floor| posting <= *floor) {
            insert_sealed(txn, &head, posting)?
        } else {
            insert_sorted(&mut head.postings, posting)
        };
        head.count += i64::from(added);
    }
    let chunks = txn.collection::<Chunk>(CHUNKS);
    while head.postings.len() >= CHUNK {
        let rest = head.postings.split_off(CHUNK);
        let sealed = std::mem::replace(&mut head.postings, rest);
        head.floor = sealed.last().cloned();
        chunks.insert_one(Chunk {
            key: chunk_key(term, head.sealed),
            low: sealed[0].clone(),
            postings: sealed,
        })?;
        head.sealed += 1;
    }
    save_head(txn, &head, existed)
}

fn remove_posting(txn: &Transaction, term: &str, posting: &str) -> polodb_core::Result<()> {
    let Some(mut head) = txn
        .collection::<TermHead>(TERMS)
        .find_one(doc! { "_id": term })?
    else {
        return Ok(());
    };
    let removed = if head.floor.as_deref().is_some_and(|floor| posting <= floor) {
        match sealed_chunk_for(txn, &head, posting)? {
            Some(mut chunk) => {
                let removed = remove_sorted(&mut chunk.postings, posting);
                if removed {
                    save_chunk(txn, &chunk)?;
                }
                removed
            }
            None => false,
        }
    } else {
        remove_sorted(&mut head.postings, posting)
    };
    if removed {
        head.count -= 1;
        save_head(txn, &head, true)?;
    }
    Ok(())
}

fn insert_sealed(txn: &Transaction, head: &TermHead, posting: String) -> polodb_core::Result<bool> {
    let Some(mut chunk) = sealed_chunk_for(txn, head, &posting)? else {
        return Ok(false);
    };
    let added = insert_sorted(&mut chunk.postings, posting);
    if added {
        save_chunk(txn, &chunk)?;
    }
    Ok(added)
}

/// The sealed chunk a posting sorts into: the last whose `low` is at most the posting, or
/// the first. Binary search, one point read per step.
fn sealed_chunk_for(
    txn: &Transaction,
    head: &TermHead,
    posting: &str,
) -> polodb_core::Result<Option<Chunk>> {
    let chunks = txn.collection::<Chunk>(CHUNKS);
    let read = |n: i64| chunks.find_one(doc! { "_id": chunk_key(&head.term, n) });
    let (mut low, mut high) = (0, head.sealed);
    let mut best = None;
    while low < high {
        let middle = (low + high) / 2;
        let Some(chunk) = read(middle)? else {
            break;
        };
        if chunk.low.as_str() <= posting {
            best = Some(chunk);
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    match best {
        Some(chunk) => Ok(Some(chunk)),
        None if head.sealed > 0 => read(0),
        None => Ok(None),
    }
}

fn save_head(txn: &Transaction, head: &TermHead, existed: bool) -> polodb_core::Result<()> {
    let heads = txn.collection::<TermHead>(TERMS);
    if existed {
        heads.delete_one(doc! { "_id": &head.term })?;
    }
    if head.count > 0 || head.sealed > 0 {
        heads.insert_one(head)?;
    }
    Ok(())
}

fn save_chunk(txn: &Transaction, chunk: &Chunk) -> polodb_core::Result<()> {
    let chunks = txn.collection::<Chunk>(CHUNKS);
    chunks.delete_one(doc! { "_id": &chunk.key })?;
    chunks.insert_one(chunk)?;
    Ok(())
}

/// Returns whether it was not there yet.
fn insert_sorted(postings: &mut Vec<String>, posting: String) -> bool {
    match postings.binary_search(&posting) {
        Ok(_) => false,
        Err(at) => {
            postings.insert(at, posting);
            true
        }
    }
}

fn remove_sorted(postings: &mut Vec<String>, posting: &str) -> bool {
    match postings.binary_search_by(|p| p.as_str().cmp(posting)) {
        Ok(at) => {
            postings.remove(at);
            true
        }
        Err(_) => false,
    }
}

/// A term's postings newest first, from a cursor, reading one chunk at a time.
struct NewestFirst<'a> {
    txn: &'a Transaction,
    term: String,
    /// Oldest first; taken from the end.
    current: Vec<String>,
    /// The chunk to read when `current` runs out, if any.
    next_chunk: Option<i64>,
}

impl<'a> NewestFirst<'a> {
    fn start(
        txn: &'a Transaction,
        head: TermHead,
        before: Option<&SearchCursor>,
    ) -> polodb_core::Result<NewestFirst<'a>> {
        let before = before.map(SearchCursor::as_str);
        let in_sealed = match (before, head.floor.as_deref()) {
            (Some(before), Some(floor)) => before <= floor,
            _ => false,
        };
        let (mut current, next_chunk) = if in_sealed {
            let before = before.unwrap_or_default();
            match sealed_chunk_for(txn, &head, before)? {
                Some(chunk) => {
                    let n = chunk_number(&chunk.key);
                    (chunk.postings, n.checked_sub(1).filter(|&n| n >= 0))
                }
                None => (Vec::new(), None),
            }
        } else {
            (head.postings, (head.sealed > 0).then(|| head.sealed - 1))
        };
        if let Some(before) = before {
            current.truncate(current.partition_point(|p| p.as_str() < before));
        }
        Ok(NewestFirst {
            txn,
            term: head.term,
            current,
            next_chunk,
        })
    }

    fn next(&mut self) -> polodb_core::Result<Option<String>> {
        loop {
            if let Some(posting) = self.current.pop() {
                return Ok(Some(posting));
            }
            let Some(n) = self.next_chunk else {
                return Ok(None);
            };
            self.next_chunk = (n > 0).then(|| n - 1);
            self.current = self
                .txn
                .collection::<Chunk>(CHUNKS)
                .find_one(doc! { "_id": chunk_key(&self.term, n) })?
                .map(|chunk| chunk.postings)
                .unwrap_or_default();
        }
    }
}

fn chunk_number(key: &str) -> i64 {
    key.rsplit_once('#')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

/// Messages holding every term of `query` in rooms `can_read` allows, newest first. Walks
/// the rarest term's postings and checks each candidate against the message as stored now.
pub(super) fn search(
    txn: &Transaction,
    messages_collection: &str,
    query: &SearchQuery,
    before: Option<&SearchCursor>,
    limit: usize,
    can_read: &dyn Fn(&Slug) -> bool,
) -> polodb_core::Result<SearchPage> {
    let heads = txn.collection::<TermHead>(TERMS);
    let mut rarest: Option<TermHead> = None;
    for term in query.terms() {
        let Some(head) = heads.find_one(doc! { "_id": term })? else {
            // A term in no message: nothing holds them all.
            return Ok(SearchPage::default());
        };
        if rarest.as_ref().is_none_or(|r| head.count < r.count) {
            rarest = Some(head);
        }
    }
    let Some(rarest) = rarest else {
        return Ok(SearchPage::default());
    };
    let messages = txn.collection::<MessageRecord>(messages_collection);
    let mut postings = NewestFirst::start(txn, rarest, before)?;
    let mut page = SearchPage::default();
    let mut checked = 0;
    let mut last_checked: Option<String> = None;
    while let Some(posting) = postings.next()? {
        if page.hits.len() == limit || checked == MAX_CANDIDATES {
            page.more = last_checked.map(SearchCursor);
            break;
        }
        checked += 1;
        let key = posting.split_once('|').map_or("", |(_, key)| key);
        let room = key.rsplit_once('/').and_then(|(room, _)| Slug::parse(room));
        if room.is_some_and(|room| can_read(&room))
            && let Some(message) = messages.find_one(doc! { "_id": key })?
            && message.kind == MessageKind::User
            && !message.deleted
            && query.matches(&message.body)
        {
            page.hits.push(message);
        }
        last_checked = Some(posting);
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AppendBatch, PoloStore, RoomRecord, Storage};

    const START: i64 = 1_700_000_000_000;

    struct Fixture {
        store: PoloStore,
        _dir: tempfile::TempDir,
        next_id: std::collections::HashMap<String, u64>,
    }

    impl Fixture {
        fn new(rooms: &[&str]) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let store = PoloStore::open(dir.path()).unwrap();
            for room in rooms {
                store
                    .create_room(&RoomRecord {
                        slug: Slug::parse(room).unwrap(),
                        name: room.to_string(),
                        topic: String::new(),
                        created_by: String::new(),
                        created_at: START,
                        last_id: 0,
                        last_activity: START,
                        mentions: Vec::new(),
                    })
                    .unwrap();
            }
            Fixture {
                store,
                _dir: dir,
                next_id: Default::default(),
            }
        }

        /// Stores `(room, body, created_at)` in one commit; returns the records.
        fn append(&mut self, messages: &[(&str, String, i64)]) -> Vec<MessageRecord> {
            let mut batch = AppendBatch::default();
            for (room, body, at) in messages {
                let id = self.next_id.entry(room.to_string()).or_insert(0);
                *id += 1;
                batch.messages.push(MessageRecord::new(
                    &Slug::parse(room).unwrap(),
                    *id,
                    MessageKind::User,
                    "alice".into(),
                    body.clone(),
                    *at,
                ));
            }
            self.store.append(&batch).unwrap();
            batch.messages
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
    /// committed in batches of 55: enough to seal a couple of chunks.
    fn filled() -> (Fixture, Vec<MessageRecord>) {
        let mut fixture = Fixture::new(&["lobby", "other"]);
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

    #[test]
    fn pages_walk_the_postings_newest_first_across_sealed_chunks() {
        let (fixture, all) = filled();
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

    #[test]
    fn rooms_the_viewer_cannot_read_are_left_out() {
        let (fixture, all) = filled();
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

    #[test]
    fn edits_and_deletions_reach_postings_in_sealed_chunks() {
        let (fixture, mut all) = filled();
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
        // The index itself moved, not just what verification lets through.
        let head = |term: &str| {
            fixture
                .store
                .read(|txn| {
                    txn.collection::<TermHead>(TERMS)
                        .find_one(doc! { "_id": term })
                })
                .unwrap()
        };
        assert!(
            head("unique").is_none(),
            "a term no message holds is dropped"
        );
        assert_eq!(head("common").unwrap().count, all.len() as i64);
        assert_eq!(head("rewrite"), None);
    }

    #[test]
    fn a_message_stamped_older_than_sealed_postings_is_found_in_its_place() {
        let (mut fixture, all) = filled();
        let early = fixture.append(&[("lobby", "common but early".into(), START - 5)]);
        let late = fixture.append(&[("lobby", "common and late".into(), START + 1000)]);
        let mut expected = vec![late[0].key.clone()];
        expected.extend(newest_first(&all));
        expected.push(early[0].key.clone());
        assert_eq!(fixture.search_all("common", &everywhere), expected);
    }

    #[test]
    fn a_search_checks_a_bounded_number_of_candidates_per_page() {
        let mut fixture = Fixture::new(&["lobby"]);
        let half = MAX_CANDIDATES as i64 + 100;
        let mut both = None;
        for start in (0..half).step_by(500) {
            let messages: Vec<(&str, String, i64)> = (start..(start + 500).min(half))
                .flat_map(|n| {
                    [
                        ("lobby", format!("apples {n}"), START + 2 * n),
                        ("lobby", format!("pears {n}"), START + 2 * n + 1),
                    ]
                })
                .collect();
            fixture.append(&messages);
            if both.is_none() {
                both = Some(fixture.append(&[("lobby", "apples and pears".into(), START - 1)]));
            }
        }
        let query = SearchQuery::parse("pears apples").unwrap();
        let first = fixture.store.search(&query, None, 50, &everywhere).unwrap();
        assert!(first.hits.is_empty(), "nothing among the newest candidates");
        assert!(first.more.is_some(), "but the search can go on");
        assert_eq!(
            fixture.search_all("pears apples", &everywhere),
            vec![both.unwrap()[0].key.clone()]
        );
    }

    #[test]
    fn cursors_from_urls_must_look_like_postings() {
        let good = format!("{:015}|lobby/{:020}", START, 42);
        assert_eq!(SearchCursor::parse(&good).unwrap().as_str(), good);
        for bad in [
            "",
            "lobby/00000000000000000042",
            "1700000000000|lobby/00000000000000000042",
            "001700000000000|Lobby/00000000000000000042",
            "001700000000000|lobby/42",
        ] {
            assert_eq!(SearchCursor::parse(bad), None, "{bad:?}");
        }
    }
}
