//! Search on PostgreSQL: the GIN index over each message's `terms` (the very index terms
//! chat-domain computes for PoloDB's index) finds the messages holding every looked-up term,
//! newest posting first, and each is then checked against the whole query and the viewer's
//! rooms, as PoloDB's search does. Pages and their cursors are postings, so results, order,
//! paging and `more` match PoloDB's.

use postgres::GenericClient;

use super::super::search_index::{MAX_READS, SearchCursor, SearchPage};
use super::super::{StoreError, StoreResult};
use super::rows::{self, MESSAGE_COLUMNS};
use crate::domain::{SearchQuery, Slug};

/// Candidates fetched per query: most pages fill from the first.
const CANDIDATES_PER_QUERY: i64 = 200;

/// See [`Storage::search`](super::super::Storage::search). Checks at most `MAX_READS`
/// candidates per page, then answers with what it found and where to go on.
pub(super) fn search(
    client: &mut impl GenericClient,
    query: &SearchQuery,
    before: Option<&SearchCursor>,
    limit: usize,
    can_read: &dyn Fn(&Slug) -> bool,
) -> StoreResult<SearchPage> {
    let lookups = query.index_lookups();
    let mut page = SearchPage::default();
    if lookups.is_empty() {
        return Ok(page);
    }
    let statement = client.prepare(&format!(
        "SELECT {MESSAGE_COLUMNS}, posting FROM messages
         WHERE terms @> $1 AND ($2::text IS NULL OR posting < $2)
         ORDER BY posting DESC LIMIT $3"
    ))?;
    let mut older_than = before.map(|cursor| cursor.as_str().to_owned());
    let mut last_checked: Option<String> = None;
    let mut checked = 0;
    loop {
        let candidates =
            client.query(&statement, &[&lookups, &older_than, &CANDIDATES_PER_QUERY])?;
        let exhausted = (candidates.len() as i64) < CANDIDATES_PER_QUERY;
        for row in &candidates {
            // At least one candidate per page, so paging always moves on.
            if page.hits.len() == limit || (last_checked.is_some() && checked >= MAX_READS) {
                page.more = last_checked.as_deref().map(cursor).transpose()?;
                return Ok(page);
            }
            checked += 1;
            last_checked = Some(row.try_get("posting")?);
            let message = rows::message(row)?;
            if can_read(&message.room) && query.matches(&message.searchable_text()) {
                page.hits.push(message);
            }
        }
        if exhausted {
            return Ok(page);
        }
        older_than = last_checked.clone();
    }
}

fn cursor(posting: &str) -> StoreResult<SearchCursor> {
    SearchCursor::parse(posting)
        .ok_or_else(|| StoreError::Database(format!("stored posting {posting:?}")))
}
