//! `chat move-to-postgres`: copies a stopped server's PoloDB database into an empty
//! PostgreSQL one, through each side's `Storage`, so a server started on `--database-url`
//! has everything it had: rooms, history (searchable: PostgreSQL computes the same terms),
//! resend records, read marks and mutes, settings, nicknames and passwords, bots, and
//! sessions (people stay logged in), and attachments with their bytes and thumbnails, so
//! that any instance serves them.

use std::collections::BTreeMap;
use std::path::Path;

use super::OpsError;
use crate::files::stored_name;
use crate::store::{PgStore, PoloStore, Storage, StoreResult};

/// Messages per transaction on the PostgreSQL side.
const CHUNK: u64 = 1_000;

/// How many records of each kind were moved.
pub type Moved = BTreeMap<&'static str, u64>;

/// Copies everything `from` holds into `to`, which must hold nothing yet. Not one
/// transaction: if it stops half way, empty the database (drop and create it) and run it
/// again; `from` is only read.
/// `files_dir` is the data directory's `files`, where PoloDB's attachments' bytes are.
pub fn move_to_postgres(
    from: &PoloStore,
    files_dir: &Path,
    to: &PgStore,
) -> Result<Moved, OpsError> {
    if !to.is_empty()? {
        return Err(OpsError::Invalid(
            "the PostgreSQL database already holds chat data; move into an empty one".into(),
        ));
    }
    let mut moved = Moved::new();
    let rooms = from.rooms()?;
    for room in &rooms {
        to.create_room(room)?;
        let last_id = room.last_id.max(0) as u64;
        let mut next = 1;
        while next <= last_id {
            let messages = from.messages(&room.slug, next, next + CHUNK - 1)?;
            to.rewrite(&messages, &[])?;
            *moved.entry("messages").or_default() += messages.len() as u64;
            next += CHUNK;
        }
    }
    moved.insert("rooms", rooms.len() as u64);
    let client_ids = from.dedup_records()?;
    to.import_client_ids(&client_ids)?;
    moved.insert("resend records", client_ids.len() as u64);
    let files = from.all_files()?;
    for file in &files {
        let mut keys = vec![stored_name(&file.hash, false)];
        if file.image.is_some() {
            keys.push(stored_name(&file.hash, true));
        }
        for key in keys.into_iter().flatten() {
            let path = files_dir.join(&key);
            let mut bytes = std::fs::File::open(&path)
                .map_err(OpsError::io(format!("reading {}", path.display())))?;
            to.put_file_bytes(&key, &mut bytes)?;
        }
    }
    // The records last: one in the database has its bytes there.
    copy_each(&mut moved, "attachments", files, |file| to.put_file(file))?;
    copy_each(&mut moved, "readers", from.readers()?, |reader| {
        to.save_reader(reader)
    })?;
    copy_each(&mut moved, "settings", from.all_settings()?, |setting| {
        to.put_setting(&setting.key, &setting.value)
    })?;
    copy_each(&mut moved, "nickname claims", from.all_claims()?, |claim| {
        to.put_claim(claim)
    })?;
    copy_each(&mut moved, "bots", from.bots()?, |bot| to.save_bot(bot))?;
    copy_each(&mut moved, "sessions", from.all_sessions()?, |session| {
        to.create_session(session).map(drop)
    })?;
    Ok(moved)
}

/// Writes each of `records` with `write`, and counts them as `kind`.
fn copy_each<T>(
    moved: &mut Moved,
    kind: &'static str,
    records: Vec<T>,
    write: impl Fn(&T) -> StoreResult<()>,
) -> Result<(), OpsError> {
    for record in &records {
        write(record)?;
    }
    moved.insert(kind, records.len() as u64);
    Ok(())
}
