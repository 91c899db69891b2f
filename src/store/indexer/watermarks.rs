//! Per room, "indexed through message id N", written in the same commit as the postings it
//! covers; and the marker that says which index format they count in.

use polodb_core::bson::{Document, doc};
use polodb_core::{CollectionT, Database, Transaction};
use serde::{Deserialize, Serialize};

use crate::domain::Slug;
use crate::store::RoomRecord;
use crate::store::search_index::RUNS;

const WATERMARKS: &str = "search_indexed";
/// The marker's key, which no slug can be. Its `id` is the index format the watermarks
/// count in: a database without it (or with another) has an index this build can't use.
const FORMAT_MARKER: &str = "#format";
/// 1: words under their prefixes. Builds before kept whole words (in another collection),
/// with a marker `#watermarks`, or before that no watermarks at all.
const FORMAT: i64 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Watermark {
    #[serde(rename = "_id")]
    room: String,
    /// Every message of the room with an id up to this one is in the index.
    id: i64,
}

pub(super) fn watermark(txn: &Transaction, room: &Slug) -> polodb_core::Result<i64> {
    Ok(txn
        .collection::<Watermark>(WATERMARKS)
        .find_one(doc! { "_id": room.as_str() })?
        .map_or(0, |mark| mark.id))
}

pub(super) fn set_watermark(txn: &Transaction, room: &str, id: i64) -> polodb_core::Result<()> {
    let marks = txn.collection::<Watermark>(WATERMARKS);
    marks.delete_one(doc! { "_id": room })?;
    marks.insert_one(Watermark {
        room: room.to_owned(),
        id,
    })?;
    Ok(())
}

/// Once per database and index format: unless the marker says the index is in this build's
/// format, it is emptied and every watermark forgotten, in one commit, so the indexer builds
/// it afresh from the stored messages, oldest first, going on after a restart from the
/// watermarks it wrote. Returns how many messages that is (by the rooms in collection
/// `rooms`), or `None` if the index was current.
pub(super) fn start_current_format(db: &Database, rooms: &str) -> polodb_core::Result<Option<i64>> {
    let txn = db.start_transaction()?;
    let marks = txn.collection::<Watermark>(WATERMARKS);
    if marks
        .find_one(doc! { "_id": FORMAT_MARKER })?
        .is_some_and(|marker| marker.id == FORMAT)
    {
        txn.rollback()?;
        return Ok(None);
    }
    marks.delete_many(doc! {})?;
    txn.collection::<Document>(RUNS).drop()?;
    marks.insert_one(Watermark {
        room: FORMAT_MARKER.to_owned(),
        id: FORMAT,
    })?;
    let mut messages = 0;
    for room in txn.collection::<RoomRecord>(rooms).find(doc! {}).run()? {
        messages += room?.last_id.max(0);
    }
    txn.commit()?;
    Ok(Some(messages))
}

/// Before loading a dump: the dump brings its own watermarks, or none.
pub(super) fn forget_watermarks(db: &Database) -> polodb_core::Result<()> {
    db.collection::<Watermark>(WATERMARKS)
        .delete_many(doc! {})?;
    Ok(())
}
