//! `Storage` on PostgreSQL (`--database-url`), which several instances may share: the same
//! records and semantics as [`PoloStore`](super::PoloStore), in tables (see `schema/`).
//! Calls block, like every `Storage` call, and so run off the async workers; each takes a
//! connection from a small pool for the length of one statement or transaction. What one
//! instance commits it announces to the others (`announce`).

mod announce;
mod device_links;
mod file_bytes;
mod import;
mod migrations;
mod presence;
mod readers;
mod rows;
mod search;
#[cfg(test)]
pub(crate) mod test_cluster;
#[cfg(test)]
mod tests;
mod webhook_jobs;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use postgres::NoTls;
use postgres::types::ToSql;
use r2d2_postgres::{PostgresConnectionManager, r2d2};

use super::announcements::Announcements;
use super::append::{self, AppendOutcome, PendingMessage, RoomHead};
use super::search_index::{SearchCursor, SearchPage};
use super::{
    BotRecord, ClaimRecord, DedupRecord, DeviceLinkRecord, DirectMember, FileRecord, MessageRecord,
    ReaderRecord, RoomPresence, RoomRecord, SessionRecord, Storage, StoreError, StoreResult,
    WebhookJob,
};
use crate::domain::{SearchQuery, Slug};
use crate::identity::LoginEnd;
use rows::{
    BOT_COLUMNS, CLAIM_COLUMNS, FILE_COLUMNS, MESSAGE_COLUMNS, ROOM_COLUMNS, SESSION_COLUMNS,
};

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
type Connection = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// Connections one instance holds at most: the committer, the session store and a few
/// requests' worth of reads at once.
const POOL_SIZE: u32 = 16;
/// How long a call waits for a connection (the database is away, or all are busy) before
/// it fails as storage failures do: a send refused while the database is away is answered
/// `store_failed` within this, rather than showing "Sending…" for long.
const CONNECTION_WAIT: Duration = Duration::from_secs(3);

pub struct PgStore {
    /// Taken only by `drop`, which closes it on a thread of its own.
    pool: Option<Pool>,
    /// For the connection that listens to the other instances (boxed: it is large, and
    /// read once).
    config: Box<postgres::Config>,
    /// This store's own id in its announcements.
    origin: String,
    /// Announce appends inside their transaction rather than right after it: NOTIFY then
    /// holds a database-wide lock through the commit, serialising commits (for measuring).
    notify_in_commit: bool,
}

impl Drop for PgStore {
    /// A connection's close blocks (it runs the client's own small runtime), which would
    /// panic on an async worker, where the store's last handle may well be dropped.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::Builder::new()
                .name("postgres-close".into())
                .spawn(move || drop(pool));
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgStore")
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host/db`, or libpq's `key=value` form) and brings
    /// the schema up to date. Blocks: call it off the async workers.
    pub fn connect(url: &str) -> StoreResult<PgStore> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Database(format!("the database URL: {e}")))?;
        // An unreachable host fails a call, as any storage failure does, rather than hang it.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECTION_WAIT);
        }
        let mut migrating = config.connect(NoTls)?;
        migrations::migrate(&mut migrating)?;
        drop(migrating);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECTION_WAIT)
            .build(PostgresConnectionManager::new(config.clone(), NoTls))?;
        Ok(PgStore {
            pool: Some(pool),
            config: Box::new(config),
            origin: announce::new_origin(),
            notify_in_commit: false,
        })
    }

    /// Announces appends inside their transaction instead of right after it.
    pub fn notifying_in_commit(mut self, in_commit: bool) -> PgStore {
        self.notify_in_commit = in_commit;
        self
    }

    fn connection(&self) -> StoreResult<Connection> {
        let pool = self
            .pool
            .as_ref()
            .expect("the pool is open until the store is dropped");
        Ok(pool.get()?)
    }

    /// One statement that changes rows; returns how many.
    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        Ok(self.connection()?.execute(sql, params)?)
    }

    /// One statement that changes a room's record, announced to the other instances.
    fn change_room(&self, room: &Slug, sql: &str, value: &(dyn ToSql + Sync)) -> StoreResult<()> {
        let mut client = self.connection()?;
        client.execute(sql, &[&room.as_str(), value])?;
        announce::announce_after_commit(&mut *client, &announce::room_changed(&self.origin, room));
        Ok(())
    }

    /// The rows one query returns, each turned into a record.
    fn select<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        record: fn(&postgres::Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.connection()?
            .query(sql, params)?
            .iter()
            .map(record)
            .collect()
    }

    /// The row a query returns, if any, turned into a record.
    fn select_one<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        record: fn(&postgres::Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        self.connection()?
            .query_opt(sql, params)?
            .as_ref()
            .map(record)
            .transpose()
    }
}

impl From<postgres::Error> for StoreError {
    /// With the server's own message and SQLSTATE when it sent one, for the logs.
    fn from(e: postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => StoreError::Database(format!(
                "PostgreSQL: {} ({})",
                db.message(),
                db.code().code()
            )),
            None => StoreError::Database(format!("PostgreSQL: {e}")),
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Database(format!("no PostgreSQL connection: {e}"))
    }
}

impl Storage for PgStore {
    fn rooms(&self) -> StoreResult<Vec<RoomRecord>> {
        self.select(
            &format!("SELECT {ROOM_COLUMNS} FROM rooms"),
            &[],
            rows::room,
        )
    }

    fn room(&self, slug: &Slug) -> StoreResult<Option<RoomRecord>> {
        self.select_one(
            &format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE slug = $1"),
            &[&slug.as_str()],
            rows::room,
        )
    }

    fn create_room(&self, room: &RoomRecord) -> StoreResult<bool> {
        let mut client = self.connection()?;
        let created = rows::create_room(&mut *client, room)?;
        if created {
            let announcement = announce::room_changed(&self.origin, &room.slug);
            announce::announce_after_commit(&mut *client, &announcement);
        }
        Ok(created)
    }

    fn set_topic(&self, room: &Slug, topic: &str) -> StoreResult<()> {
        self.change_room(room, "UPDATE rooms SET topic = $2 WHERE slug = $1", &topic)
    }

    fn rename_room(&self, room: &Slug, name: &str) -> StoreResult<()> {
        self.change_room(room, "UPDATE rooms SET name = $2 WHERE slug = $1", &name)
    }

    fn set_archived(&self, room: &Slug, archived: bool) -> StoreResult<()> {
        self.change_room(
            room,
            "UPDATE rooms SET archived = $2 WHERE slug = $1",
            &archived,
        )
    }

    fn set_members(&self, room: &Slug, members: &[DirectMember]) -> StoreResult<()> {
        self.change_room(
            room,
            "UPDATE rooms SET members = $2 WHERE slug = $1",
            &postgres::types::Json(members),
        )
    }

    fn append(&self, batch: &[PendingMessage]) -> StoreResult<AppendOutcome> {
        let mut client = self.connection()?;
        let mut txn = client.transaction()?;
        // The rooms' rows, locked: an append to the same room on another instance waits
        // here until this one commits, then reads the ids it took.
        let heads = txn
            .query(
                "SELECT slug, last_id, counted, last_activity, mentions FROM rooms
                 WHERE slug = ANY($1) ORDER BY slug FOR UPDATE",
                &[&append::rooms_of(batch)],
            )?
            .iter()
            .map(rows::room_head)
            .collect::<StoreResult<Vec<RoomHead>>>()?;
        // Read after the locks: a resend that went through another instance has committed
        // by now (a resend key belongs to one room), so it is found here.
        let keys = append::dedup_keys_of(batch);
        let known: HashMap<String, u64> = if keys.is_empty() {
            HashMap::new()
        } else {
            txn.query(
                "SELECT key, id FROM client_ids WHERE key = ANY($1)",
                &[&keys],
            )?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("key")?,
                    row.try_get::<_, i64>("id")?.max(0) as u64,
                ))
            })
            .collect::<StoreResult<_>>()?
        };
        let assignment = append::assign(batch, heads, known)?;
        rows::insert_messages(&mut txn, &assignment.messages)?;
        rows::write_client_ids(&mut txn, &assignment.dedup)?;
        webhook_jobs::queue(&mut txn, batch, &assignment.outcome.appended)?;
        for head in &assignment.outcome.heads {
            txn.execute(
                "UPDATE rooms SET last_id = $2, counted = $3, last_activity = $4, mentions = $5
                 WHERE slug = $1",
                &[
                    &head.slug.as_str() as &(dyn ToSql + Sync),
                    &head.last_id,
                    &head.counted,
                    &head.last_activity,
                    &postgres::types::Json(&head.mentions),
                ],
            )?;
        }
        let announcements = announce::appended(&self.origin, &assignment.outcome.heads);
        if self.notify_in_commit {
            announce::announce_in_commit(&mut txn, &announcements)?;
            txn.commit()?;
        } else {
            txn.commit()?;
            announce::announce_after_commit(&mut *client, &announcements);
        }
        Ok(assignment.outcome)
    }

    fn messages(&self, room: &Slug, from: u64, to: u64) -> StoreResult<Vec<MessageRecord>> {
        let (from, to) = (
            from.max(1).min(i64::MAX as u64) as i64,
            to.min(i64::MAX as u64) as i64,
        );
        self.select(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE room = $1 AND id BETWEEN $2 AND $3 ORDER BY id"
            ),
            &[&room.as_str(), &from, &to],
            rows::message,
        )
    }

    fn update_message(&self, message: &MessageRecord) -> StoreResult<()> {
        let mut client = self.connection()?;
        let replace = rows::prepare_message_write(&mut *client)?;
        rows::write_message(&mut *client, &replace, message)?;
        let announcement = announce::changed(&self.origin, &message.room, message.id);
        announce::announce_after_commit(&mut *client, &announcement);
        Ok(())
    }

    fn change_message(
        &self,
        room: &Slug,
        id: u64,
        change: &mut dyn FnMut(Option<MessageRecord>) -> Option<MessageRecord>,
    ) -> StoreResult<()> {
        let mut client = self.connection()?;
        let mut txn = client.transaction()?;
        // Locked: the same change on another instance waits, then reads this one's result.
        let stored = txn
            .query_opt(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = $1 AND id = $2
                     FOR UPDATE"
                ),
                &[&room.as_str(), &(id.min(i64::MAX as u64) as i64)],
            )?
            .as_ref()
            .map(rows::message)
            .transpose()?;
        // Left as it is: the transaction ends unused.
        let Some(changed) = change(stored) else {
            return Ok(());
        };
        let replace = rows::prepare_message_write(&mut txn)?;
        rows::write_message(&mut txn, &replace, &changed)?;
        txn.commit()?;
        let announcement = announce::changed(&self.origin, &changed.room, changed.id);
        announce::announce_after_commit(&mut *client, &announcement);
        Ok(())
    }

    fn rewrite(&self, messages: &[MessageRecord], rooms: &[RoomRecord]) -> StoreResult<()> {
        let mut client = self.connection()?;
        let mut txn = client.transaction()?;
        let replace = rows::prepare_message_write(&mut txn)?;
        for message in messages {
            rows::write_message(&mut txn, &replace, message)?;
        }
        for room in rooms {
            rows::upsert_room(&mut txn, room)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn search(
        &self,
        query: &SearchQuery,
        before: Option<&SearchCursor>,
        limit: usize,
        can_read: &dyn Fn(&Slug) -> bool,
    ) -> StoreResult<SearchPage> {
        search::search(&mut *self.connection()?, query, before, limit, can_read)
    }

    fn dedup_records(&self) -> StoreResult<Vec<DedupRecord>> {
        self.select("SELECT key, room, id FROM client_ids", &[], rows::dedup)
    }

    fn file(&self, hash: &str) -> StoreResult<Option<FileRecord>> {
        self.select_one(
            &format!("SELECT {FILE_COLUMNS} FROM files WHERE hash = $1"),
            &[&hash],
            rows::file,
        )
    }

    fn put_file(&self, file: &FileRecord) -> StoreResult<()> {
        self.execute(
            &format!(
                "INSERT INTO files ({FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (hash) DO UPDATE
                     SET size = $2, media_type = $3, image = $4, created_at = $5"
            ),
            &[
                &file.hash,
                &(file.size.min(i64::MAX as u64) as i64),
                &file.media_type,
                &file.image.as_ref().map(postgres::types::Json),
                &file.created_at,
            ],
        )?;
        Ok(())
    }

    fn reader(&self, login_id: &str) -> StoreResult<Option<ReaderRecord>> {
        readers::reader(&mut *self.connection()?, login_id)
    }

    fn readers(&self) -> StoreResult<Vec<ReaderRecord>> {
        readers::all(&mut *self.connection()?)
    }

    fn save_reader(&self, reader: &ReaderRecord) -> StoreResult<()> {
        readers::save(&mut *self.connection()?, reader)
    }

    fn change_reader(
        &self,
        login_id: &str,
        change: Box<dyn FnOnce(&mut ReaderRecord) + '_>,
    ) -> StoreResult<ReaderRecord> {
        readers::change(&mut *self.connection()?, login_id, change)
    }

    fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        self.select_one(
            "SELECT value FROM settings WHERE key = $1",
            &[&key],
            |row| Ok(row.try_get("value")?),
        )
    }

    fn put_setting(&self, key: &str, value: &str) -> StoreResult<()> {
        self.execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = $2",
            &[&key, &value],
        )?;
        Ok(())
    }

    fn claim(&self, nickname_key: &str) -> StoreResult<Option<ClaimRecord>> {
        self.select_one(
            &format!("SELECT {CLAIM_COLUMNS} FROM nickname_claims WHERE nickname_key = $1"),
            &[&nickname_key],
            rows::claim,
        )
    }

    fn put_claim(&self, claim: &ClaimRecord) -> StoreResult<()> {
        rows::upsert_claim(&mut *self.connection()?, claim)
    }

    fn delete_claim(&self, nickname_key: &str) -> StoreResult<()> {
        self.execute(
            "DELETE FROM nickname_claims WHERE nickname_key = $1",
            &[&nickname_key],
        )?;
        Ok(())
    }

    fn bots(&self) -> StoreResult<Vec<BotRecord>> {
        self.select(&format!("SELECT {BOT_COLUMNS} FROM bots"), &[], rows::bot)
    }

    fn create_bot(&self, bot: &BotRecord, claim: &ClaimRecord) -> StoreResult<()> {
        let mut client = self.connection()?;
        let mut txn = client.transaction()?;
        rows::upsert_claim(&mut txn, claim)?;
        rows::write_bot(&mut txn, bot, false)?;
        txn.commit()?;
        announce::announce_after_commit(&mut *client, &announce::bots_changed(&self.origin));
        Ok(())
    }

    fn save_bot(&self, bot: &BotRecord) -> StoreResult<()> {
        let mut client = self.connection()?;
        rows::write_bot(&mut *client, bot, true)?;
        announce::announce_after_commit(&mut *client, &announce::bots_changed(&self.origin));
        Ok(())
    }

    fn delete_bot(&self, id: &str, claim_key: Option<&str>) -> StoreResult<()> {
        let mut client = self.connection()?;
        let mut txn = client.transaction()?;
        txn.execute("DELETE FROM bots WHERE id = $1", &[&id])?;
        if let Some(key) = claim_key {
            txn.execute(
                "DELETE FROM nickname_claims WHERE nickname_key = $1",
                &[&key],
            )?;
        }
        txn.commit()?;
        announce::announce_after_commit(&mut *client, &announce::bots_changed(&self.origin));
        Ok(())
    }

    fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        self.select_one(
            &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"),
            &[&id],
            rows::session,
        )
    }

    fn create_session(&self, session: &SessionRecord) -> StoreResult<bool> {
        let inserted = self.execute(
            &format!(
                "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING"
            ),
            &[
                &session.id,
                &session.login_id,
                &session.data,
                &session.expires_at,
            ],
        )?;
        Ok(inserted == 1)
    }

    fn save_session(&self, session: &SessionRecord) -> StoreResult<()> {
        self.execute(
            &format!(
                "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET login_id = $2, data = $3, expires_at = $4"
            ),
            &[
                &session.id,
                &session.login_id,
                &session.data,
                &session.expires_at,
            ],
        )?;
        Ok(())
    }

    fn delete_session(&self, id: &str) -> StoreResult<()> {
        self.execute("DELETE FROM sessions WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn delete_login_sessions(&self, login_id: &str, why: LoginEnd) -> StoreResult<()> {
        let mut client = self.connection()?;
        client.execute("DELETE FROM sessions WHERE login_id = $1", &[&login_id])?;
        // After the commit: an instance that hears it finds the sessions gone.
        announce::announce_after_commit(
            &mut *client,
            &announce::login_ended(&self.origin, login_id, why),
        );
        Ok(())
    }

    fn delete_expired_sessions(&self, now_unix: i64) -> StoreResult<u64> {
        self.execute("DELETE FROM sessions WHERE expires_at < $1", &[&now_unix])
    }

    fn login_is_live(&self, login_id: &str, now_unix: i64) -> StoreResult<bool> {
        let live = self.select_one(
            "SELECT 1 AS live FROM sessions WHERE login_id = $1 AND expires_at > $2 LIMIT 1",
            &[&login_id, &now_unix],
            |_| Ok(()),
        )?;
        Ok(live.is_some())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn announce_left_room(&self, login_id: &str, room: &Slug) -> StoreResult<()> {
        announce::announce_after_commit(
            &mut *self.connection()?,
            &announce::left_room(&self.origin, room, login_id),
        );
        Ok(())
    }

    fn announcements(&self) -> StoreResult<Option<Box<dyn Announcements>>> {
        let listener = announce::Listener::new((*self.config).clone(), self.origin.clone());
        Ok(Some(Box::new(listener)))
    }

    fn share_presence(&self, rooms: &[RoomPresence]) -> StoreResult<()> {
        presence::share(&mut *self.connection()?, &self.origin, rooms)
    }

    fn heartbeat(&self) -> StoreResult<()> {
        presence::beat(&mut *self.connection()?, &self.origin)
    }

    fn presence_elsewhere(
        &self,
        room: Option<&Slug>,
        alive_for: Duration,
    ) -> StoreResult<Vec<RoomPresence>> {
        presence::elsewhere(&mut *self.connection()?, &self.origin, room, alive_for)
    }

    fn put_device_link(
        &self,
        link: &DeviceLinkRecord,
        per_login: usize,
        max_pending: usize,
    ) -> StoreResult<bool> {
        device_links::put(&mut *self.connection()?, link, per_login, max_pending)
    }

    fn device_link(
        &self,
        token_hash: &str,
        now_millis: i64,
        take: bool,
    ) -> StoreResult<Option<DeviceLinkRecord>> {
        device_links::find(&mut *self.connection()?, token_hash, now_millis, take)
    }

    fn put_file_bytes(&self, key: &str, from: &mut dyn std::io::Read) -> StoreResult<bool> {
        file_bytes::put(&mut *self.connection()?, key, from)
    }

    fn file_bytes(&self, key: &str) -> StoreResult<Option<(u64, u32)>> {
        file_bytes::size(&mut *self.connection()?, key)
    }

    fn file_chunk(&self, key: &str, seq: u32) -> StoreResult<Option<Vec<u8>>> {
        file_bytes::chunk(&mut *self.connection()?, key, seq)
    }

    fn take_token(&self, key: &str, per_second: f64, burst: f64) -> StoreResult<bool> {
        let taken = self.connection()?.query_opt(
            "INSERT INTO rate_buckets AS b (key, tokens, at) VALUES ($1, $3::float8 - 1, now())
             ON CONFLICT (key) DO UPDATE
             SET tokens = LEAST($3::float8,
                     b.tokens + EXTRACT(EPOCH FROM now() - b.at)::float8 * $2::float8) - 1,
                 at = now()
             WHERE LEAST($3::float8,
                     b.tokens + EXTRACT(EPOCH FROM now() - b.at)::float8 * $2::float8) >= 1
             RETURNING tokens",
            &[&key, &per_second, &burst],
        )?;
        Ok(taken.is_some())
    }

    fn give_token_back(&self, key: &str, burst: f64) -> StoreResult<()> {
        self.execute(
            "UPDATE rate_buckets SET tokens = LEAST($2::float8, tokens + 1) WHERE key = $1",
            &[&key, &burst],
        )?;
        Ok(())
    }

    fn take_webhook_jobs(&self, limit: usize, lease: Duration) -> StoreResult<Vec<WebhookJob>> {
        webhook_jobs::take(&mut *self.connection()?, &self.origin, limit, lease)
    }

    fn hold_webhook_job(&self, job: &WebhookJob, lease: Duration) -> StoreResult<bool> {
        webhook_jobs::hold(&mut *self.connection()?, &self.origin, job, lease)
    }

    fn finish_webhook_job(&self, job: &WebhookJob) -> StoreResult<()> {
        webhook_jobs::finish(&mut *self.connection()?, &self.origin, job)
    }

    fn release_webhook_jobs(&self) -> StoreResult<()> {
        webhook_jobs::release(&mut *self.connection()?, &self.origin)
    }

    fn lock_claims(&self) -> StoreResult<Option<Box<dyn Send>>> {
        let mut client = self.connection()?;
        let locked = client.batch_execute(&format!(
            "BEGIN; SET LOCAL lock_timeout = '{}s'; SELECT pg_advisory_xact_lock({CLAIMS_LOCK})",
            CLAIMS_LOCK_WAIT.as_secs()
        ));
        if let Err(e) = locked {
            // Back to the pool out of the failed transaction, as any connection goes back.
            let _ = client.batch_execute("ROLLBACK");
            return Err(e.into());
        }
        Ok(Some(Box::new(ClaimsLocked(client))))
    }

    fn dump(&self, _out: &mut dyn std::io::Write) -> StoreResult<BTreeMap<String, u64>> {
        Err(StoreError::Database(PG_DUMP_INSTEAD.into()))
    }
}

/// The advisory lock nickname claims are decided under (a constant no other lock uses).
const CLAIMS_LOCK: i64 = 0x0063_6861_7463_6c6d; // "chatclm"
/// How long a login waits for another instance's claim decision before it fails.
const CLAIMS_LOCK_WAIT: Duration = Duration::from_secs(5);

/// The claims lock, held by an open transaction on a pooled connection of its own:
/// rolling back releases it, and the connection goes back to the pool.
struct ClaimsLocked(Connection);

impl Drop for ClaimsLocked {
    fn drop(&mut self) {
        if let Err(e) = self.0.batch_execute("ROLLBACK") {
            tracing::warn!(error = %e, "releasing the nickname claims lock failed");
        }
    }
}

/// What `chat backup` says when the data is in PostgreSQL.
pub const PG_DUMP_INSTEAD: &str = "the data is in PostgreSQL: back it up with pg_dump \
     (e.g. `pg_dump --format=custom --file=chat.dump DATABASE_URL`), see the README";
