//! Attachments' bytes in the database, in chunks written and read one at a time, so a large
//! file never sits whole in memory.

use std::io::Read;

use postgres::GenericClient;

use super::super::{StoreError, StoreResult};

/// Bytes per chunk: large enough that a 25 MiB file is a hundred rows, small enough that
/// a chunk in flight costs little memory.
const CHUNK: usize = 256 * 1024;

pub(super) fn put(
    client: &mut impl GenericClient,
    key: &str,
    from: &mut dyn Read,
) -> StoreResult<bool> {
    let mut txn = client.transaction()?;
    if txn
        .query_opt("SELECT 1 FROM file_bytes WHERE key = $1", &[&key])?
        .is_some()
    {
        return Ok(false);
    }
    let mut buffer = vec![0u8; CHUNK];
    let (mut size, mut seq): (i64, i32) = (0, 0);
    loop {
        let filled = fill(from, &mut buffer)?;
        if filled == 0 {
            break;
        }
        // Another instance storing the same bytes at the same moment: theirs are the same.
        txn.execute(
            "INSERT INTO file_chunks (key, seq, bytes) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&key, &seq, &&buffer[..filled]],
        )?;
        size += filled as i64;
        seq += 1;
        if filled < CHUNK {
            break;
        }
    }
    txn.execute(
        "INSERT INTO file_bytes (key, size, chunks) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        &[&key, &size, &seq],
    )?;
    txn.commit()?;
    Ok(true)
}

/// Reads until `buffer` is full or the reader ends; returns how much it holds.
fn fill(from: &mut dyn Read, buffer: &mut [u8]) -> StoreResult<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match from.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(StoreError::Database(format!(
                    "reading a file to store: {e}"
                )));
            }
        }
    }
    Ok(filled)
}

pub(super) fn size(client: &mut impl GenericClient, key: &str) -> StoreResult<Option<(u64, u32)>> {
    Ok(client
        .query_opt(
            "SELECT size, chunks FROM file_bytes WHERE key = $1",
            &[&key],
        )?
        .map(|row| (row.get::<_, i64>(0) as u64, row.get::<_, i32>(1) as u32)))
}

pub(super) fn chunk(
    client: &mut impl GenericClient,
    key: &str,
    seq: u32,
) -> StoreResult<Option<Vec<u8>>> {
    Ok(client
        .query_opt(
            "SELECT bytes FROM file_chunks WHERE key = $1 AND seq = $2",
            &[&key, &(seq as i32)],
        )?
        .map(|row| row.get(0)))
}
