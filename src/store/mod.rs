//! Storage behind one narrow, blocking interface.
//!
//! Everything here blocks on disk, so callers run it off the async workers: the hub's
//! committer thread for message batches, `spawn_blocking` for the rest.

mod announcements;
mod append;
mod backup;
mod error;
mod handle;
mod indexer;
mod migrate;
mod polo;
mod postgres;
mod search_index;
mod sessions;
#[cfg(test)]
mod storage_tests;
#[cfg(test)]
mod test_backends;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{SearchQuery, Slug};
use crate::identity::LoginEnd;

pub use self::postgres::{PG_DUMP_INSTEAD, PgStore};
pub use announcements::{Announcement, Announcements};
pub use append::{AppendOutcome, Appended, PendingMessage, RoomHead};
pub use error::StoreError;
pub use migrate::{Upgraded, upgrade};
pub use polo::{DATABASE_DIR, PoloStore};
pub use search_index::{MAX_READS, SearchCursor, SearchPage};
pub use sessions::SessionBackend;

pub type StoreResult<T> = Result<T, StoreError>;

/// Runs storage work on tokio's blocking pool: every call from async code goes through here.
pub async fn blocking<T: Send + 'static>(
    storage: &Arc<dyn Storage>,
    work: impl FnOnce(&dyn Storage) -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    let storage = storage.clone();
    tokio::task::spawn_blocking(move || work(storage.as_ref()))
        .await
        .map_err(|e| StoreError::Database(format!("storage task failed: {e}")))?
}

const NO_SHARED_BUCKETS: &str = "rate limits are kept in memory with this store";
const NO_FILE_BYTES: &str = "attachments' bytes are on disk with this store";
const NO_SHARED_LINKS: &str = "device links are kept in memory with this store";
const NO_WEBHOOK_JOBS: &str = "webhook deliveries are queued in memory with this store";

/// A stored message's delivery to one bot's webhook, queued in the message's commit by a
/// [shared](Storage::is_shared) store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookJob {
    pub room: Slug,
    pub message_id: i64,
    pub bot_id: String,
}

/// A one-time link that logs another device in as its login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLinkRecord {
    /// The SHA-256 of the link's token: the token itself is never stored.
    pub token_hash: String,
    pub login_id: String,
    pub nickname: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// Who is here and who is typing in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPresence {
    pub room: Slug,
    pub here: Vec<String>,
    pub typing: Vec<String>,
}

/// The operations the chat needs from a database. PoloDB is the embedded default; keys are
/// designed so that every read is a point lookup. PostgreSQL (`PgStore`) is the other.
pub trait Storage: Send + Sync + 'static {
    /// All rooms. Rooms are few, and this runs at start-up (and when an instance sharing
    /// the database may have missed announcements).
    fn rooms(&self) -> StoreResult<Vec<RoomRecord>>;
    fn room(&self, slug: &Slug) -> StoreResult<Option<RoomRecord>>;
    /// Inserts the room unless its slug exists; returns whether it was created.
    fn create_room(&self, room: &RoomRecord) -> StoreResult<bool>;
    fn set_topic(&self, room: &Slug, topic: &str) -> StoreResult<()>;
    /// A new display name; the slug (and so every URL) stays.
    fn rename_room(&self, room: &Slug, name: &str) -> StoreResult<()>;
    /// An archived room is read-only.
    fn set_archived(&self, room: &Slug, archived: bool) -> StoreResult<()>;
    /// A direct conversation's two people, after one of them became a former holder.
    fn set_members(&self, room: &Slug, members: &[DirectMember]) -> StoreResult<()>;
    /// Appends messages in one commit: each gets the next id of its room (so a room's ids
    /// are dense, in commit order, whichever instance wrote them), unless its resend key was
    /// stored before; each touched room's record moves to its newest message. Returns the
    /// ids. Search finds the messages a moment later: they are indexed after the commit, off
    /// this path.
    fn append(&self, batch: &[PendingMessage]) -> StoreResult<AppendOutcome>;
    /// Messages of `room` with ids in `from..=to` that exist, in id order.
    fn messages(&self, room: &Slug, from: u64, to: u64) -> StoreResult<Vec<MessageRecord>>;
    /// Rewrites one stored message in place: an edit, a deletion or a reaction. The search
    /// index follows in the same commit (after indexing the message as first sent, if it
    /// was not yet): a deleted message is found by nothing, an edited one by its new words
    /// only.
    fn update_message(&self, message: &MessageRecord) -> StoreResult<()>;
    /// Rewrites message `id` of `room` as `change` decides from the message as stored
    /// (`None` when there is none): `change` returns the message to store, or `None` to
    /// leave it. The read and the write are one step that changes made elsewhere at the
    /// same moment wait for, so none is lost (two reactions at once, on two instances).
    fn change_message(
        &self,
        room: &Slug,
        id: u64,
        change: &mut dyn FnMut(Option<MessageRecord>) -> Option<MessageRecord>,
    ) -> StoreResult<()> {
        // PoloDB's messages have one writer, this process's committer: a read, then a write.
        let stored = self.messages(room, id, id)?.pop();
        match change(stored) {
            Some(changed) => self.update_message(&changed),
            None => Ok(()),
        }
    }
    /// Rewrites stored messages whose searchable text is unchanged (so the search index is
    /// not touched), and rooms' records, in one commit. For upgrades of stored data.
    fn rewrite(&self, messages: &[MessageRecord], rooms: &[RoomRecord]) -> StoreResult<()>;
    /// People's messages (not system lines, not deleted) holding every term of `query`, in
    /// rooms `can_read` allows, newest first: at most `limit`, older than `before` if given.
    /// `more` is where the next page starts when the search stopped early.
    fn search(
        &self,
        query: &SearchQuery,
        before: Option<&SearchCursor>,
        limit: usize,
        can_read: &dyn Fn(&Slug) -> bool,
    ) -> StoreResult<SearchPage>;
    /// Every resend record (`append` looks them up itself); only upgrades and moves read
    /// them all.
    fn dedup_records(&self) -> StoreResult<Vec<DedupRecord>>;

    /// What is known about the stored file with this hash, if it was ever uploaded.
    fn file(&self, hash: &str) -> StoreResult<Option<FileRecord>>;
    fn put_file(&self, file: &FileRecord) -> StoreResult<()>;

    /// What a login has read, and which rooms it muted.
    fn reader(&self, login_id: &str) -> StoreResult<Option<ReaderRecord>>;
    /// Every login's reader record; only upgrades read them all.
    fn readers(&self) -> StoreResult<Vec<ReaderRecord>>;
    fn save_reader(&self, reader: &ReaderRecord) -> StoreResult<()>;
    /// Changes a login's reader record as `change` (run once) decides from the stored one
    /// (an empty one when there is none), writes it if that changed anything, and returns it
    /// as it is now. The read and the write are one step that changes made elsewhere at the same
    /// moment wait for: two tabs on two instances lose neither's mark.
    fn change_reader(
        &self,
        login_id: &str,
        change: Box<dyn FnOnce(&mut ReaderRecord) + '_>,
    ) -> StoreResult<ReaderRecord> {
        // PoloDB has one writer, this process, whose hub changes one reader at a time.
        let before = self
            .reader(login_id)?
            .unwrap_or_else(|| ReaderRecord::empty(login_id));
        let mut after = before.clone();
        change(&mut after);
        if after != before {
            self.save_reader(&after)?;
        }
        Ok(after)
    }

    /// A small server-wide value, such as the admin setup link's hash.
    fn setting(&self, key: &str) -> StoreResult<Option<String>>;
    fn put_setting(&self, key: &str, value: &str) -> StoreResult<()>;

    fn claim(&self, nickname_key: &str) -> StoreResult<Option<ClaimRecord>>;
    fn put_claim(&self, claim: &ClaimRecord) -> StoreResult<()>;
    fn delete_claim(&self, nickname_key: &str) -> StoreResult<()>;

    /// The claim on this nickname if someone holds it now: a bot, a nickname protected with a
    /// password, or a login with a live session. The one rule for "who is bob now", used by logins, mentions and direct
    /// conversations.
    fn holder(&self, nickname_key: &str, now_millis: i64) -> StoreResult<Option<ClaimRecord>> {
        let Some(claim) = self.claim(nickname_key)? else {
            return Ok(None);
        };
        let held = claim.is_bot()
            || claim.password_hash.is_some()
            || (claim.released_at.is_none()
                && self.login_is_live(&claim.login_id, now_millis / 1000)?);
        Ok(held.then_some(claim))
    }

    /// Every bot. Bots are few, and this runs once at start-up.
    fn bots(&self) -> StoreResult<Vec<BotRecord>>;
    /// Stores a new bot together with the claim that reserves its name, in one commit.
    fn create_bot(&self, bot: &BotRecord, claim: &ClaimRecord) -> StoreResult<()>;
    /// Rewrites a bot: a new or revoked token, a changed webhook.
    fn save_bot(&self, bot: &BotRecord) -> StoreResult<()>;
    /// Deletes a bot, and the claim on its name (when given), in one commit.
    fn delete_bot(&self, id: &str, claim_key: Option<&str>) -> StoreResult<()>;

    fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>>;
    /// Inserts a session; returns false if the id is taken.
    fn create_session(&self, session: &SessionRecord) -> StoreResult<bool>;
    fn save_session(&self, session: &SessionRecord) -> StoreResult<()>;
    fn delete_session(&self, id: &str) -> StoreResult<()>;
    /// Ends every session of a login (all its linked devices); instances sharing the store
    /// close its sockets too, for `why`.
    fn delete_login_sessions(&self, login_id: &str, why: LoginEnd) -> StoreResult<()>;
    /// Deletes the sessions that expired before `now_unix`; returns how many.
    fn delete_expired_sessions(&self, now_unix: i64) -> StoreResult<u64>;
    /// Whether any unexpired session belongs to this login.
    fn login_is_live(&self, login_id: &str, now_unix: i64) -> StoreResult<bool>;

    /// Whether other instances write this store at the same time. Then nothing of it may be
    /// cached as if this process were its only writer, and what one instance would keep for
    /// itself (sessions, device links, guess budgets, attachments' bytes) is kept here.
    fn is_shared(&self) -> bool {
        false
    }

    /// What other instances sharing this database commit, for a [shared](Storage::is_shared)
    /// store; `None` for one that only this process writes. Blocking: read it on a thread
    /// of its own.
    fn announcements(&self) -> StoreResult<Option<Box<dyn Announcements>>> {
        Ok(None)
    }

    /// Shares who is here and who is typing on this instance's sockets in these rooms with
    /// the instances sharing the database, and tells them; says this instance is alive too.
    /// Does nothing for a store only this process uses.
    fn share_presence(&self, _rooms: &[RoomPresence]) -> StoreResult<()> {
        Ok(())
    }

    /// Says this instance is still alive, so what it shares keeps counting.
    fn heartbeat(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Tells the instances sharing the database that a login left a room, so they close its
    /// sockets there. Nothing to tell for a store only this process uses.
    fn announce_left_room(&self, _login_id: &str, _room: &Slug) -> StoreResult<()> {
        Ok(())
    }

    /// Who the other instances alive within `alive_for` show in `room` (every room, for
    /// `None`): one entry per room, everyone of every instance together.
    fn presence_elsewhere(
        &self,
        _room: Option<&Slug>,
        _alive_for: Duration,
    ) -> StoreResult<Vec<RoomPresence>> {
        Ok(Vec::new())
    }

    /// Keeps a new device link until it expires, dropping the login's oldest beyond
    /// `per_login`; `false` (and nothing kept) when `max_pending` unexpired links wait
    /// already. Only for a [shared](Storage::is_shared) store: others keep links in memory.
    fn put_device_link(
        &self,
        _link: &DeviceLinkRecord,
        _per_login: usize,
        _max_pending: usize,
    ) -> StoreResult<bool> {
        Err(StoreError::Database(NO_SHARED_LINKS.into()))
    }

    /// The unexpired link with this token hash; `take` removes it, so that it works once.
    fn device_link(
        &self,
        _token_hash: &str,
        _now_millis: i64,
        _take: bool,
    ) -> StoreResult<Option<DeviceLinkRecord>> {
        Err(StoreError::Database(NO_SHARED_LINKS.into()))
    }

    /// Stores the bytes `from` reads under `key`, chunk by chunk (never all in memory), in
    /// one commit; `false` when the key has its bytes already. Only for a
    /// [shared](Storage::is_shared) store: otherwise the bytes are on this instance's disk.
    fn put_file_bytes(&self, _key: &str, _from: &mut dyn std::io::Read) -> StoreResult<bool> {
        Err(StoreError::Database(NO_FILE_BYTES.into()))
    }

    /// The size and number of chunks of the bytes under `key`, if it has them.
    fn file_bytes(&self, _key: &str) -> StoreResult<Option<(u64, u32)>> {
        Err(StoreError::Database(NO_FILE_BYTES.into()))
    }

    /// Chunk `seq` (from 0) of the bytes under `key`.
    fn file_chunk(&self, _key: &str, _seq: u32) -> StoreResult<Option<Vec<u8>>> {
        Err(StoreError::Database(NO_FILE_BYTES.into()))
    }

    /// Takes a token from the bucket `key` (refilling at `per_second` up to `burst`), for
    /// every instance sharing the store; `false` when it is empty. Only for a
    /// [shared](Storage::is_shared) store: others keep buckets in memory.
    fn take_token(&self, _key: &str, _per_second: f64, _burst: f64) -> StoreResult<bool> {
        Err(StoreError::Database(NO_SHARED_BUCKETS.into()))
    }

    /// Puts back a token [`Storage::take_token`] took, up to `burst`.
    fn give_token_back(&self, _key: &str, _burst: f64) -> StoreResult<()> {
        Err(StoreError::Database(NO_SHARED_BUCKETS.into()))
    }

    /// Leases to this instance, for `lease`, up to `limit` queued webhook jobs that no
    /// instance holds (none took them, or its lease ran out), oldest first. Only for a
    /// [shared](Storage::is_shared) store: others queue deliveries in memory.
    fn take_webhook_jobs(&self, _limit: usize, _lease: Duration) -> StoreResult<Vec<WebhookJob>> {
        Err(StoreError::Database(NO_WEBHOOK_JOBS.into()))
    }

    /// Extends this instance's lease on `job` to `lease` from now; `false` if it is no
    /// longer this instance's (another took it over, or it is done).
    fn hold_webhook_job(&self, _job: &WebhookJob, _lease: Duration) -> StoreResult<bool> {
        Err(StoreError::Database(NO_WEBHOOK_JOBS.into()))
    }

    /// Takes a job this instance holds off the queue: delivered, or given up on.
    fn finish_webhook_job(&self, _job: &WebhookJob) -> StoreResult<()> {
        Err(StoreError::Database(NO_WEBHOOK_JOBS.into()))
    }

    /// Lets go of every job this instance holds, for others to take now (it is stopping).
    fn release_webhook_jobs(&self) -> StoreResult<()> {
        Err(StoreError::Database(NO_WEBHOOK_JOBS.into()))
    }

    /// Takes the lock under which nickname claims are decided, for every process sharing
    /// this database, and holds it until the returned guard is dropped (blocking: drop it
    /// off the async workers). `None` for a store only this process writes, whose own lock
    /// is enough.
    fn lock_claims(&self) -> StoreResult<Option<Box<dyn Send>>> {
        Ok(None)
    }

    /// Writes every document of every collection to `out` as of one point in time (writes
    /// wait until it is done; reads don't), in the backend's own format; returns how many
    /// documents each collection had. For backups.
    fn dump(&self, _out: &mut dyn std::io::Write) -> StoreResult<BTreeMap<String, u64>> {
        Err(StoreError::Database(
            "this storage cannot be backed up".into(),
        ))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomRecord {
    #[serde(rename = "_id")]
    pub slug: Slug,
    pub name: String,
    pub topic: String,
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub last_id: i64,
    /// How many of its messages count as unread until read: people's and bots', not system
    /// lines. Ids count every message, so unread is counted from this.
    #[serde(default)]
    pub counted: i64,
    /// Unix milliseconds of the newest message, or of creation.
    pub last_activity: i64,
    /// The newest message mentioning each recently mentioned person, oldest first.
    #[serde(default)]
    pub mentions: Vec<MentionMark>,
    /// Read-only: history stays, nobody but an admin changes anything.
    #[serde(default)]
    pub archived: bool,
    /// A direct conversation's two people; empty for a named room. Only they may read it.
    #[serde(default)]
    pub members: Vec<DirectMember>,
}

/// One of the two people of a direct conversation: their login, and the name they had.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DirectMember {
    /// The login's public handle (`identity::login_handle`).
    pub login: String,
    pub name: String,
    /// The nickname has passed to another login since: the other person sees this one
    /// marked as a former holder of the name.
    #[serde(default)]
    pub former: bool,
}

impl DirectMember {
    /// The name as a conversation shows it.
    pub fn shown_name(&self) -> String {
        if self.former {
            format!("{} (former holder)", self.name)
        } else {
            self.name.clone()
        }
    }
}

impl RoomRecord {
    /// A room with no messages or topic yet, created at `at` (Unix milliseconds).
    pub fn new(slug: Slug, name: String, created_by: &str, at: i64) -> RoomRecord {
        RoomRecord {
            slug,
            name,
            topic: String::new(),
            created_by: created_by.to_owned(),
            created_at: at,
            last_id: 0,
            counted: 0,
            last_activity: at,
            mentions: Vec::new(),
            archived: false,
            members: Vec::new(),
        }
    }
}

/// Message `id` mentioned the person with this mention key: what marks a room in that
/// person's sidebar until they have read it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MentionMark {
    pub key: String,
    pub id: i64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    User,
    System,
}

impl MessageKind {
    /// Whether a message of this kind counts as unread: a person's or a bot's, not a
    /// system line about who joined or what changed.
    pub fn counts(self) -> bool {
        self == MessageKind::User
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::User => "user",
            MessageKind::System => "system",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageRecord {
    #[serde(rename = "_id")]
    pub key: String,
    pub room: Slug,
    pub id: i64,
    pub kind: MessageKind,
    /// The name it was sent under; for a system line, the actor it names.
    pub author: String,
    /// The author's login handle (`identity::login_handle`), what "own" means; empty for
    /// system lines.
    #[serde(default)]
    pub login: String,
    pub body: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub client_id: Option<String>,
    /// Unix milliseconds of the last edit.
    #[serde(default)]
    pub edited_at: Option<i64>,
    /// A deleted message keeps its place (and id) with its body cleared.
    #[serde(default)]
    pub deleted: bool,
    /// In the order each emoji was first used.
    #[serde(default)]
    pub reactions: Vec<Reaction>,
    #[serde(default)]
    pub reply_to: Option<ReplyPreview>,
    /// Posted by a bot through the API, which the message shows.
    #[serde(default)]
    pub bot: bool,
    /// A file sent with the message; the body is then its caption, and may be empty.
    #[serde(default)]
    pub attachment: Option<Attachment>,
    /// Login handles of the people its `@mentions` named when it was sent (or last edited):
    /// what highlights it for them, and no later holder of those names.
    #[serde(default)]
    pub mentioned: Vec<String>,
}

/// A file attached to a message: what the message shows of it and how it is served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    /// SHA-256 of the bytes, in hex: where they are stored (see `crate::files`).
    pub hash: String,
    /// The name it was uploaded with, without any path or control characters.
    pub name: String,
    pub size: u64,
    /// Sniffed from the bytes: one of the inline image types, or `application/octet-stream`.
    pub media_type: String,
    /// Set for images shown inline, which also have a thumbnail.
    #[serde(default)]
    pub image: Option<ImageInfo>,
}

/// An image's size, after its EXIF orientation, and its thumbnail's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
    pub thumb_width: u32,
    pub thumb_height: u32,
    pub thumb_type: String,
}

/// What the stored bytes with this hash are, so the same bytes sent again are neither
/// sniffed nor thumbnailed again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRecord {
    #[serde(rename = "_id")]
    pub hash: String,
    pub size: u64,
    pub media_type: String,
    #[serde(default)]
    pub image: Option<ImageInfo>,
    /// Unix milliseconds of the first upload.
    pub created_at: i64,
}

/// One emoji on a message and who reacted with it, in the order they did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reaction {
    pub emoji: String,
    pub by: Vec<String>,
}

/// What a reply shows of the message it answers, copied when the reply is sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplyPreview {
    pub id: i64,
    pub author: String,
    pub excerpt: String,
}

impl MessageRecord {
    /// A new message as first stored: not edited, deleted, reacted to or answering anything.
    pub fn new(
        room: &Slug,
        id: u64,
        kind: MessageKind,
        author: String,
        login: String,
        body: String,
        created_at: i64,
    ) -> MessageRecord {
        MessageRecord {
            key: MessageRecord::key_for(room, id),
            room: room.clone(),
            id: id as i64,
            kind,
            author,
            login,
            body,
            created_at,
            client_id: None,
            edited_at: None,
            deleted: false,
            reactions: Vec::new(),
            reply_to: None,
            bot: false,
            attachment: None,
            mentioned: Vec::new(),
        }
    }

    /// The text search finds the message by: its body, and its attachment's name.
    pub fn searchable_text(&self) -> std::borrow::Cow<'_, str> {
        match &self.attachment {
            Some(file) => format!("{}\n{}", self.body, file.name).into(),
            None => self.body.as_str().into(),
        }
    }

    /// `{slug}/{id}` with the id zero-padded, so a room's messages sort by id too.
    pub fn key_for(room: &Slug, id: u64) -> String {
        format!("{room}/{id:020}")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DedupRecord {
    #[serde(rename = "_id")]
    pub key: String,
    pub room: Slug,
    pub id: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClaimRecord {
    #[serde(rename = "_id")]
    pub nickname_key: String,
    pub nickname: String,
    /// The login holding the nickname, or a bot's ([`bot_login_id`]).
    pub login_id: String,
    /// Unix milliseconds of the logout that let the nickname go; kept so that a bot can't
    /// take a name a person had until recently.
    #[serde(default)]
    pub released_at: Option<i64>,
    /// Argon2 hash of the password protecting the nickname: such a claim is never released
    /// by logout or expiry, and the password logs in to its login again.
    #[serde(default)]
    pub password_hash: Option<String>,
}

/// One server-wide value under a name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SettingRecord {
    #[serde(rename = "_id")]
    pub key: String,
    pub value: String,
}

/// Starts the `login_id` of a claim that reserves a bot's name. Login ids never hold a `:`.
const BOT_CLAIM_PREFIX: &str = "bot:";

/// The login id a bot's claim holds (`bot:{id}`): its name's holder, its rate limiter's key,
/// and, hashed, the login handle its messages carry.
pub fn bot_login_id(bot_id: &str) -> String {
    format!("{BOT_CLAIM_PREFIX}{bot_id}")
}

impl ClaimRecord {
    /// A claim of `nickname` for a login (a person's, or a bot's [`bot_login_id`]).
    pub fn new(nickname: &crate::domain::Nickname, login_id: String) -> ClaimRecord {
        ClaimRecord {
            nickname_key: nickname.key(),
            nickname: nickname.to_string(),
            login_id,
            released_at: None,
            password_hash: None,
        }
    }

    /// A bot's name stays reserved for good, whether or not anyone is logged in.
    pub fn is_bot(&self) -> bool {
        self.bot_id().is_some()
    }

    /// The id of the bot whose name this is, if a bot's.
    pub fn bot_id(&self) -> Option<&str> {
        self.login_id.strip_prefix(BOT_CLAIM_PREFIX)
    }

    /// Whether a bot may not take this name at `now`: it is a bot's, or a person had it
    /// (or may still have it: an expired session never released it) within the last
    /// [`NAME_RESERVED_AFTER_RELEASE_MILLIS`].
    pub fn keeps_bots_out(&self, now: i64) -> bool {
        self.is_bot()
            || self
                .released_at
                .is_none_or(|released| now - released < NAME_RESERVED_AFTER_RELEASE_MILLIS)
    }
}

/// How long a released nickname stays out of bots' reach: the default session lifetime, so a
/// person coming back finds their name unless another person took it.
pub const NAME_RESERVED_AFTER_RELEASE_MILLIS: i64 = 30 * 24 * 3600 * 1000;

/// A bot: a name that posts through the API with a token, made by a person on the settings
/// page. Only the token's hash is kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BotRecord {
    /// Random and public: the first part of the token, so a token finds its bot.
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    /// The login that made it, the only one that can manage it.
    pub owner_login: String,
    /// Hex SHA-256 of the current token; `None` once revoked.
    pub token_hash: Option<String>,
    /// Where mentions of the bot are POSTed.
    pub webhook_url: Option<String>,
    /// This server's origin as the owner reached it, for absolute permalinks in webhooks.
    pub origin: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRecord {
    #[serde(rename = "_id")]
    pub id: String,
    /// The login this session carries, indexed so nickname claims can check liveness.
    pub login_id: Option<String>,
    /// The tower-sessions data map, as JSON.
    pub data: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Per login: the rooms it is a member of and how far it has read each, the rooms it muted,
/// and the rooms it left. One document, so a page needs one point lookup for every unread
/// count.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReaderRecord {
    #[serde(rename = "_id")]
    pub login_id: String,
    /// The newest message id seen in each room the login is a member of: joining a room
    /// starts its mark, leaving removes it.
    pub last_read: std::collections::BTreeMap<String, i64>,
    /// The room's count of messages that count (`RoomRecord::counted`) at that mark: unread
    /// is the room's count now less this.
    #[serde(default)]
    pub read_counted: std::collections::BTreeMap<String, i64>,
    pub muted: Vec<String>,
    /// Rooms the login left: kept out of its sidebar until it opens them again.
    #[serde(default)]
    pub left: Vec<String>,
}

impl ReaderRecord {
    /// A login that has read nothing, muted nothing and left nothing.
    pub fn empty(login_id: &str) -> ReaderRecord {
        ReaderRecord {
            login_id: login_id.to_owned(),
            ..ReaderRecord::default()
        }
    }

    /// Whether the login joined the room (and has not left it since).
    pub fn is_member(&self, room: &str) -> bool {
        self.last_read.contains_key(room)
    }

    /// The room's newest id and count of counted messages the login has seen, if a member.
    pub fn mark(&self, room: &str) -> Option<ReadMark> {
        let id = *self.last_read.get(room)?;
        Some(ReadMark {
            id: id.max(0) as u64,
            counted: self.read_counted.get(room).copied().unwrap_or(0).max(0) as u64,
        })
    }

    pub fn has_left(&self, room: &str) -> bool {
        self.left.iter().any(|r| r == room)
    }

    pub fn has_muted(&self, room: &str) -> bool {
        self.muted.iter().any(|r| r == room)
    }
}

/// How far a member has read a room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadMark {
    /// The newest message id seen.
    pub id: u64,
    /// The room's count of counted messages as of that id.
    pub counted: u64,
}
