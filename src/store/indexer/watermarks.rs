//! Per room, "indexed through message id N", written in the same commit as the postings it
//! covers; and the marker that tells a database from before watermarks.

use polodb_core::bson::doc;
use polodb_core::{CollectionT, Database, Transaction};
use serde::{Deserialize, Serialize};

use crate::domain::Slug;
use crate::store::RoomRecord;

const WATERMARKS: &str = "search_indexed";
/// The marker's key, which no slug can be: this database keeps watermarks, so a room
/// without one has nothing in the index yet.
const MARKER: &str = "#watermarks";

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

/// Once per database: if it has no marker, it is from before watermarks and its index is
/// whole, so every room (in collection `rooms`) counts as indexed through its `last_id`.
pub(super) fn mark_existing_index(db: &Database, rooms: &str) -> polodb_core::Result<()> {
    let txn = db.start_transaction()?;
    let marks = txn.collection::<Watermark>(WATERMARKS);
    if marks.find_one(doc! { "_id": MARKER })?.is_some() {
        return txn.rollback();
    }
    for room in txn.collection::<RoomRecord>(rooms).find(doc! {}).run()? {
        let room = room?;
        set_watermark(&txn, room.slug.as_str(), room.last_id)?;
    }
    marks.insert_one(Watermark {
        room: MARKER.to_owned(),
        id: 0,
    })?;
    txn.commit()
}

/// Before loading a dump: the dump brings its own watermarks, or none.
pub(super) fn forget_watermarks(db: &Database) -> polodb_core::Result<()> {
    db.collection::<Watermark>(WATERMARKS)
        .delete_many(doc! {})?;
    Ok(())
}
