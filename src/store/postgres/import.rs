//! Filling an empty database from another store (`chat move-to-postgres`): what `Storage`
//! writes only as part of something else.

use super::{PgStore, rows};
use crate::store::{DedupRecord, StoreResult};

/// The tables a chat writes; a database holding a row in any of them is not empty.
const TABLES: [&str; 10] = [
    "rooms",
    "messages",
    "client_ids",
    "files",
    "readers",
    "read_marks",
    "settings",
    "nickname_claims",
    "bots",
    "sessions",
];

impl PgStore {
    /// Whether no chat has written to this database yet (its schema may be in place).
    pub fn is_empty(&self) -> StoreResult<bool> {
        let any = TABLES
            .iter()
            .map(|table| format!("EXISTS (SELECT 1 FROM {table})"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let row = self
            .connection()?
            .query_one(&format!("SELECT {any}"), &[])?;
        Ok(!row.get::<_, bool>(0))
    }

    /// Remembers resends' `client_id`s, as appending their messages did where they were
    /// first stored. One transaction.
    pub fn import_client_ids(&self, records: &[DedupRecord]) -> StoreResult<()> {
        let mut client = self.connection()?;
        let mut txn = client.transaction()?;
        rows::write_client_ids(&mut txn, records)?;
        txn.commit()?;
        Ok(())
    }
}
