//! Readers: a login's muted and left rooms in `readers`, its read marks a row per room in
//! `read_marks`, so a later version can count unread in SQL. Read and written whole, as
//! `ReaderRecord` is.

use std::collections::BTreeMap;

use postgres::GenericClient;

use super::super::{ReaderRecord, StoreResult};

pub(super) fn reader(
    client: &mut impl GenericClient,
    login_id: &str,
) -> StoreResult<Option<ReaderRecord>> {
    // One round trip, read on every page view: a row per mark, or one without a mark.
    let rows = client.query(
        "SELECT r.login_id, r.muted, r.left_rooms, m.room, m.last_read, m.read_counted
         FROM readers r LEFT JOIN read_marks m ON m.login_id = r.login_id
         WHERE r.login_id = $1",
        &[&login_id],
    )?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut reader = ReaderRecord {
        login_id: first.try_get("login_id")?,
        muted: first.try_get("muted")?,
        left: first.try_get("left_rooms")?,
        ..ReaderRecord::default()
    };
    for mark in &rows {
        if mark.try_get::<_, Option<String>>("room")?.is_some() {
            add_mark(&mut reader, mark)?;
        }
    }
    Ok(Some(reader))
}

/// Every reader, for upgrades: two queries, not one per login.
pub(super) fn all(client: &mut impl GenericClient) -> StoreResult<Vec<ReaderRecord>> {
    let mut readers: BTreeMap<String, ReaderRecord> = BTreeMap::new();
    for row in client.query("SELECT login_id, muted, left_rooms FROM readers", &[])? {
        let login_id: String = row.try_get("login_id")?;
        readers.insert(
            login_id.clone(),
            ReaderRecord {
                login_id,
                muted: row.try_get("muted")?,
                left: row.try_get("left_rooms")?,
                ..ReaderRecord::default()
            },
        );
    }
    for mark in client.query(
        "SELECT login_id, room, last_read, read_counted FROM read_marks",
        &[],
    )? {
        let login_id: &str = mark.try_get("login_id")?;
        if let Some(reader) = readers.get_mut(login_id) {
            add_mark(reader, &mark)?;
        }
    }
    Ok(readers.into_values().collect())
}

fn add_mark(reader: &mut ReaderRecord, mark: &postgres::Row) -> StoreResult<()> {
    let room: String = mark.try_get("room")?;
    if let Some(id) = mark.try_get::<_, Option<i64>>("last_read")? {
        reader.last_read.insert(room.clone(), id);
    }
    if let Some(counted) = mark.try_get::<_, Option<i64>>("read_counted")? {
        reader.read_counted.insert(room, counted);
    }
    Ok(())
}

/// The advisory locks a login's reader record is changed under: this class, and a hash of
/// the login's id.
const READER_LOCK_CLASS: i32 = 0x6372; // "cr"

/// Read-modify-write of one login's record, under a lock of its own that the same change on
/// another instance waits for (a lock, not a row: a login may have no record yet).
pub(super) fn change(
    client: &mut impl GenericClient,
    login_id: &str,
    change: Box<dyn FnOnce(&mut ReaderRecord) + '_>,
) -> StoreResult<ReaderRecord> {
    let mut txn = client.transaction()?;
    txn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&READER_LOCK_CLASS, &login_id],
    )?;
    let before = reader(&mut txn, login_id)?.unwrap_or_else(|| ReaderRecord::empty(login_id));
    let mut after = before.clone();
    change(&mut after);
    if after != before {
        save(&mut txn, &after)?;
    }
    txn.commit()?;
    Ok(after)
}

/// Replaces the login's reader record, marks and all, in one commit.
pub(super) fn save(client: &mut impl GenericClient, reader: &ReaderRecord) -> StoreResult<()> {
    let mut txn = client.transaction()?;
    txn.execute(
        "INSERT INTO readers (login_id, muted, left_rooms) VALUES ($1, $2, $3)
         ON CONFLICT (login_id) DO UPDATE SET muted = $2, left_rooms = $3",
        &[&reader.login_id, &reader.muted, &reader.left],
    )?;
    txn.execute(
        "DELETE FROM read_marks WHERE login_id = $1",
        &[&reader.login_id],
    )?;
    let rooms: Vec<&String> = reader
        .last_read
        .keys()
        .chain(
            reader
                .read_counted
                .keys()
                .filter(|r| !reader.last_read.contains_key(*r)),
        )
        .collect();
    let last_read: Vec<Option<i64>> = rooms
        .iter()
        .map(|r| reader.last_read.get(*r).copied())
        .collect();
    let read_counted: Vec<Option<i64>> = rooms
        .iter()
        .map(|r| reader.read_counted.get(*r).copied())
        .collect();
    // One statement for all the marks, however many rooms.
    txn.execute(
        "INSERT INTO read_marks (login_id, room, last_read, read_counted)
         SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[])",
        &[&reader.login_id, &rooms, &last_read, &read_counted],
    )?;
    txn.commit()?;
    Ok(())
}
