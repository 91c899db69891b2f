//! Storage behind one narrow, blocking interface.
//!
//! Everything here blocks on disk, so callers run it off the async workers: the hub's
//! committer thread for message batches, `spawn_blocking` for the rest.

mod backup;
mod error;
mod handle;
mod indexer;
mod polo;
mod search_index;
mod sessions;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::{SearchQuery, Slug};

pub use error::StoreError;
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

/// The operations the chat needs from a database. PoloDB is the embedded default; keys are
/// designed so that every read is a point lookup.
pub trait Storage: Send + Sync + 'static {
    /// All rooms. Rooms are few, and this runs once at start-up.
    fn rooms(&self) -> StoreResult<Vec<RoomRecord>>;
    /// Inserts the room unless its slug exists; returns whether it was created.
    fn create_room(&self, room: &RoomRecord) -> StoreResult<bool>;
    fn set_topic(&self, room: &Slug, topic: &str) -> StoreResult<()>;
    /// A new display name; the slug (and so every URL) stays.
    fn rename_room(&self, room: &Slug, name: &str) -> StoreResult<()>;
    /// An archived room is read-only.
    fn set_archived(&self, room: &Slug, archived: bool) -> StoreResult<()>;
    /// Appends messages (ids already assigned, contiguous per room) and moves each touched
    /// room's `last_id`, in one commit. Search finds them a moment later: they are indexed
    /// after the commit, off this path.
    fn append(&self, batch: &AppendBatch) -> StoreResult<()>;
    /// Messages of `room` with ids in `from..=to` that exist, in id order.
    fn messages(&self, room: &Slug, from: u64, to: u64) -> StoreResult<Vec<MessageRecord>>;
    /// Rewrites one stored message in place: an edit, a deletion or a reaction. The search
    /// index follows in the same commit (after indexing the message as first sent, if it
    /// was not yet): a deleted message is found by nothing, an edited one by its new words
    /// only.
    fn update_message(&self, message: &MessageRecord) -> StoreResult<()>;
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
    /// The message a `(login, client_id)` pair was stored as, if any.
    fn dedup_lookup(&self, key: &str) -> StoreResult<Option<DedupRecord>>;

    /// What is known about the stored file with this hash, if it was ever uploaded.
    fn file(&self, hash: &str) -> StoreResult<Option<FileRecord>>;
    fn put_file(&self, file: &FileRecord) -> StoreResult<()>;

    /// What a login has read, and which rooms it muted.
    fn reader(&self, login_id: &str) -> StoreResult<Option<ReaderRecord>>;
    fn save_reader(&self, reader: &ReaderRecord) -> StoreResult<()>;

    /// A small server-wide value, such as the admin setup link's hash.
    fn setting(&self, key: &str) -> StoreResult<Option<String>>;
    fn put_setting(&self, key: &str, value: &str) -> StoreResult<()>;

    fn claim(&self, nickname_key: &str) -> StoreResult<Option<ClaimRecord>>;
    fn put_claim(&self, claim: &ClaimRecord) -> StoreResult<()>;
    fn delete_claim(&self, nickname_key: &str) -> StoreResult<()>;

    /// Every bot. Bots are few, and this runs once at start-up.
    fn bots(&self) -> StoreResult<Vec<BotRecord>>;
    /// Stores a new bot together with the claim that reserves its name, in one commit.
    fn create_bot(&self, bot: &BotRecord, claim: &ClaimRecord) -> StoreResult<()>;
    /// Rewrites a bot: a new or revoked token, a changed webhook.
    fn save_bot(&self, bot: &BotRecord) -> StoreResult<()>;

    fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>>;
    /// Inserts a session; returns false if the id is taken.
    fn create_session(&self, session: &SessionRecord) -> StoreResult<bool>;
    fn save_session(&self, session: &SessionRecord) -> StoreResult<()>;
    fn delete_session(&self, id: &str) -> StoreResult<()>;
    /// Ends every session of a login (all its linked devices).
    fn delete_login_sessions(&self, login_id: &str) -> StoreResult<()>;
    /// Deletes the sessions that expired before `now_unix`; returns how many.
    fn delete_expired_sessions(&self, now_unix: i64) -> StoreResult<u64>;
    /// Whether any unexpired session belongs to this login.
    fn login_is_live(&self, login_id: &str, now_unix: i64) -> StoreResult<bool>;

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
    /// Unix milliseconds of the newest message, or of creation.
    pub last_activity: i64,
    /// The newest message mentioning each recently mentioned person, oldest first.
    #[serde(default)]
    pub mentions: Vec<MentionMark>,
    /// Read-only: history stays, nobody but an admin changes anything.
    #[serde(default)]
    pub archived: bool,
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
            last_activity: at,
            mentions: Vec::new(),
            archived: false,
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

/// A room's state after a batch, written in the batch's commit.
#[derive(Debug, Clone)]
pub struct RoomHead {
    pub slug: Slug,
    pub last_id: i64,
    pub last_activity: i64,
    pub mentions: Vec<MentionMark>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    User,
    System,
}

impl MessageKind {
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
    pub author: String,
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
        body: String,
        created_at: i64,
    ) -> MessageRecord {
        MessageRecord {
            key: MessageRecord::key_for(room, id),
            room: room.clone(),
            id: id as i64,
            kind,
            author,
            body,
            created_at,
            client_id: None,
            edited_at: None,
            deleted: false,
            reactions: Vec::new(),
            reply_to: None,
            bot: false,
            attachment: None,
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

#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    pub messages: Vec<MessageRecord>,
    pub dedup: Vec<DedupRecord>,
    /// Each touched room after this batch.
    pub room_heads: Vec<RoomHead>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClaimRecord {
    #[serde(rename = "_id")]
    pub nickname_key: String,
    pub nickname: String,
    /// The login holding the nickname, or [`BOT_CLAIM_PREFIX`] and a bot's id.
    pub login_id: String,
}

/// One server-wide value under a name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SettingRecord {
    #[serde(rename = "_id")]
    pub key: String,
    pub value: String,
}

/// Starts the `login_id` of a claim that reserves a bot's name. Login ids never hold a `:`.
pub const BOT_CLAIM_PREFIX: &str = "bot:";

impl ClaimRecord {
    /// A bot's name stays reserved for good, whether or not anyone is logged in.
    pub fn is_bot(&self) -> bool {
        self.login_id.starts_with(BOT_CLAIM_PREFIX)
    }
}

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

/// Per login: the newest message id seen in each room, and muted rooms. One document, so a
/// page needs one point lookup for every unread count.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReaderRecord {
    #[serde(rename = "_id")]
    pub login_id: String,
    pub last_read: std::collections::BTreeMap<String, i64>,
    pub muted: Vec<String>,
}
