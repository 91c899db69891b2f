//! The schema, created and upgraded by numbered migrations when an instance starts. Each
//! runs in its own transaction and is recorded in `schema_migrations`; all of it happens
//! under an advisory lock, so of two instances starting at once one migrates and the other
//! then finds nothing left to do.

use postgres::Client;

use super::super::StoreResult;

/// In order; a migration, once released, is never edited: a change is a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "storage",
        sql: include_str!("schema/0001_storage.sql"),
    },
    Migration {
        version: 2,
        name: "presence",
        sql: include_str!("schema/0002_presence.sql"),
    },
    Migration {
        version: 3,
        name: "device links",
        sql: include_str!("schema/0003_device_links.sql"),
    },
    Migration {
        version: 4,
        name: "file bytes",
        sql: include_str!("schema/0004_file_bytes.sql"),
    },
    Migration {
        version: 5,
        name: "rate buckets",
        sql: include_str!("schema/0005_rate_buckets.sql"),
    },
    Migration {
        version: 6,
        name: "webhook jobs",
        sql: include_str!("schema/0006_webhook_jobs.sql"),
    },
];

/// Any constant the chat alone uses: the advisory lock that serializes migrations.
const MIGRATION_LOCK: i64 = 0x0063_6861_746d_6967; // "chatmig"

struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Brings the schema up to date; returns the versions it applied. `client` is a connection
/// of its own, not the pool's: the advisory lock belongs to the session, which ends with it.
pub(super) fn migrate(client: &mut Client) -> StoreResult<Vec<i32>> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let applied = apply_pending(client);
    // Released before any error is returned, so a failed start doesn't block the others.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

fn apply_pending(client: &mut Client) -> StoreResult<Vec<i32>> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )?;
    let done: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let mut txn = client.transaction()?;
        txn.batch_execute(migration.sql)?;
        txn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )?;
        txn.commit()?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "PostgreSQL schema migrated"
        );
        applied.push(migration.version);
    }
    Ok(applied)
}
