//! Backups: a dump of every collection at one point in time, in a format of its own, and
//! loading one into an empty database.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use polodb_core::CollectionT;
use polodb_core::bson::{Bson, Document, doc};

use super::handle::DatabaseHandle;
use super::{StoreError, StoreResult};

/// A dump is a stream of BSON documents: `{c: collection, d: document}` for each stored
/// document, then `{end: count}`, so a cut-short stream is told from a whole one.
const DUMP_COLLECTION: &str = "c";
const DUMP_DOCUMENT: &str = "d";
const DUMP_END: &str = "end";
/// Documents inserted per commit when loading a dump.
const LOAD_BATCH: usize = 1000;

fn dump_error(e: impl std::fmt::Display) -> polodb_core::Error {
    polodb_core::Error::RocksDbErr(format!("writing the dump failed: {e}"))
}

/// See [`super::Storage::dump`].
pub(super) fn dump(db: &DatabaseHandle, out: &mut dyn Write) -> StoreResult<BTreeMap<String, u64>> {
    // Writes wait from here to the end; reads go on.
    let _alone = db.hold_writes();
    let names = db.with_db(|db| db.list_collection_names())?;
    let mut counts = BTreeMap::new();
    db.read(|txn| {
        for name in names {
            let mut count = 0u64;
            for document in txn.collection::<Document>(&name).find(doc! {}).run()? {
                let record = doc! { DUMP_COLLECTION: &name, DUMP_DOCUMENT: document? };
                record.to_writer(&mut *out).map_err(dump_error)?;
                count += 1;
            }
            counts.insert(name, count);
        }
        let total: u64 = counts.values().sum();
        doc! { DUMP_END: total as i64 }
            .to_writer(&mut *out)
            .map_err(dump_error)?;
        Ok(())
    })?;
    Ok(counts)
}

/// Inserts the documents of a dump, checking them against its trailer; returns how many
/// per collection.
pub(super) fn load(db: &DatabaseHandle, dump: &mut dyn Read) -> StoreResult<BTreeMap<String, u64>> {
    let mut loaded = BTreeMap::new();
    let mut batch: Vec<Document> = Vec::new();
    let mut batch_of = String::new();
    loop {
        let mut record = Document::from_reader(&mut *dump)
            .map_err(|e| StoreError::Database(format!("the dump ends early or is damaged: {e}")))?;
        let collection = record.get_str(DUMP_COLLECTION).ok().map(str::to_owned);
        if collection.as_deref() != Some(batch_of.as_str()) || batch.len() >= LOAD_BATCH {
            insert_all(db, &batch_of, &mut batch)?;
        }
        let Some(collection) = collection else {
            let expected = record.get_i64(DUMP_END).map_err(|_| {
                StoreError::Database("the dump holds a record that is not a document".into())
            })?;
            let total: u64 = loaded.values().sum();
            if total != expected as u64 {
                return Err(StoreError::Database(format!(
                    "the dump says {expected} documents but holds {total}"
                )));
            }
            return Ok(loaded);
        };
        let Some(Bson::Document(document)) = record.remove(DUMP_DOCUMENT) else {
            return Err(StoreError::Database("a dump record has no document".into()));
        };
        batch.push(document);
        *loaded.entry(collection.clone()).or_insert(0) += 1;
        batch_of = collection;
    }
}

fn insert_all(
    db: &DatabaseHandle,
    collection: &str,
    documents: &mut Vec<Document>,
) -> StoreResult<()> {
    if documents.is_empty() {
        return Ok(());
    }
    db.write(|db| {
        let txn = db.start_transaction()?;
        txn.collection::<Document>(collection)
            .insert_many(documents.iter())?;
        txn.commit()
    })?;
    documents.clear();
    Ok(())
}
