//! Records to rows and back: the one place that knows which column holds what.

use postgres::GenericClient;
use postgres::types::{Json, ToSql};
use postgres::{Row, Statement};

use super::super::search_index::{posting, searchable_terms};
use super::super::{
    Attachment, BotRecord, ClaimRecord, DedupRecord, FileRecord, MessageKind, MessageRecord,
    Reaction, ReplyPreview, RoomHead, RoomRecord, SessionRecord, StoreError, StoreResult,
};
use crate::domain::Slug;

pub(super) const ROOM_COLUMNS: &str = "slug, name, topic, created_by, created_at, last_id, \
     counted, last_activity, mentions, archived, members";

pub(super) const MESSAGE_COLUMNS: &str = "room, id, kind, author, login, body, created_at, \
     client_id, edited_at, deleted, reactions, reply_to, bot, attachment, mentioned";

pub(super) const CLAIM_COLUMNS: &str =
    "nickname_key, nickname, login_id, released_at, password_hash";

pub(super) const BOT_COLUMNS: &str =
    "id, name, owner_login, token_hash, webhook_url, origin, created_at";

pub(super) const SESSION_COLUMNS: &str = "id, login_id, data, expires_at";

pub(super) const FILE_COLUMNS: &str = "hash, size, media_type, image, created_at";

pub(super) fn slug(text: &str) -> StoreResult<Slug> {
    Slug::parse(text).ok_or_else(|| StoreError::Database(format!("stored slug {text:?}")))
}

pub(super) fn room(row: &Row) -> StoreResult<RoomRecord> {
    Ok(RoomRecord {
        slug: slug(row.try_get("slug")?)?,
        name: row.try_get("name")?,
        topic: row.try_get("topic")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        last_id: row.try_get("last_id")?,
        counted: row.try_get("counted")?,
        last_activity: row.try_get("last_activity")?,
        mentions: row.try_get::<_, Json<_>>("mentions")?.0,
        archived: row.try_get("archived")?,
        members: row.try_get::<_, Json<_>>("members")?.0,
    })
}

/// A room's head, from a row of `slug, last_id, counted, last_activity, mentions`.
pub(super) fn room_head(row: &Row) -> StoreResult<RoomHead> {
    Ok(RoomHead {
        slug: slug(row.try_get("slug")?)?,
        last_id: row.try_get("last_id")?,
        counted: row.try_get("counted")?,
        last_activity: row.try_get("last_activity")?,
        mentions: row.try_get::<_, Json<_>>("mentions")?.0,
    })
}

/// Inserts the room; if its slug is taken, `on_conflict` says what happens (replace or
/// keep). Returns whether a row was written.
fn insert_room(
    client: &mut impl GenericClient,
    room: &RoomRecord,
    on_conflict: &str,
) -> StoreResult<bool> {
    let written = client.execute(
        &format!(
            "INSERT INTO rooms ({ROOM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (slug) {on_conflict}"
        ),
        &[
            &room.slug.as_str(),
            &room.name,
            &room.topic,
            &room.created_by,
            &room.created_at,
            &room.last_id,
            &room.counted,
            &room.last_activity,
            &Json(&room.mentions),
            &room.archived,
            &Json(&room.members),
        ],
    )?;
    Ok(written == 1)
}

/// Inserts the room unless its slug exists; returns whether it did.
pub(super) fn create_room(client: &mut impl GenericClient, room: &RoomRecord) -> StoreResult<bool> {
    insert_room(client, room, "DO NOTHING")
}

/// Inserts the room, or replaces every field of the one with its slug.
pub(super) fn upsert_room(client: &mut impl GenericClient, room: &RoomRecord) -> StoreResult<()> {
    insert_room(
        client,
        room,
        "DO UPDATE SET name = $2, topic = $3, created_by = $4, created_at = $5, last_id = $6,
             counted = $7, last_activity = $8, mentions = $9, archived = $10, members = $11",
    )?;
    Ok(())
}

pub(super) fn message(row: &Row) -> StoreResult<MessageRecord> {
    let room = slug(row.try_get("room")?)?;
    let id: i64 = row.try_get("id")?;
    let kind = match row.try_get("kind")? {
        "user" => MessageKind::User,
        "system" => MessageKind::System,
        other => return Err(StoreError::Database(format!("stored kind {other:?}"))),
    };
    Ok(MessageRecord {
        key: MessageRecord::key_for(&room, id.max(0) as u64),
        room,
        id,
        kind,
        author: row.try_get("author")?,
        login: row.try_get("login")?,
        body: row.try_get("body")?,
        created_at: row.try_get("created_at")?,
        client_id: row.try_get("client_id")?,
        edited_at: row.try_get("edited_at")?,
        deleted: row.try_get("deleted")?,
        reactions: row.try_get::<_, Json<_>>("reactions")?.0,
        reply_to: row.try_get::<_, Option<Json<_>>>("reply_to")?.map(|j| j.0),
        bot: row.try_get("bot")?,
        attachment: row
            .try_get::<_, Option<Json<_>>>("attachment")?
            .map(|j| j.0),
        mentioned: row.try_get("mentioned")?,
    })
}

/// The statement that writes a message with its search terms and posting, which always
/// follow its text, over the one stored under its key; prepared once for a whole batch.
pub(super) fn prepare_message_write(client: &mut impl GenericClient) -> StoreResult<Statement> {
    Ok(client.prepare(&format!(
        "INSERT INTO messages ({MESSAGE_COLUMNS}, terms, posting)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT (room, id) DO UPDATE SET kind = $3, author = $4, login = $5, body = $6,
             created_at = $7, client_id = $8, edited_at = $9, deleted = $10, reactions = $11,
             reply_to = $12, bot = $13, attachment = $14, mentioned = $15, terms = $16,
             posting = $17"
    ))?)
}

/// A message's values in the order of `MESSAGE_COLUMNS, terms, posting`, with what is
/// derived from it (search terms, posting) computed once.
struct MessageValues<'a> {
    message: &'a MessageRecord,
    room: &'a str,
    kind: &'a str,
    reactions: Json<&'a Vec<Reaction>>,
    reply_to: Option<Json<&'a ReplyPreview>>,
    attachment: Option<Json<&'a Attachment>>,
    terms: Vec<String>,
    posting: String,
}

/// Parameters per message row.
const MESSAGE_VALUES: usize = 17;

impl<'a> MessageValues<'a> {
    fn of(message: &'a MessageRecord) -> MessageValues<'a> {
        MessageValues {
            message,
            room: message.room.as_str(),
            kind: message.kind.as_str(),
            reactions: Json(&message.reactions),
            reply_to: message.reply_to.as_ref().map(Json),
            attachment: message.attachment.as_ref().map(Json),
            terms: searchable_terms(message),
            posting: posting(message),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); MESSAGE_VALUES] {
        let m = self.message;
        [
            &self.room,
            &m.id,
            &self.kind,
            &m.author,
            &m.login,
            &m.body,
            &m.created_at,
            &m.client_id,
            &m.edited_at,
            &m.deleted,
            &self.reactions,
            &self.reply_to,
            &m.bot,
            &self.attachment,
            &m.mentioned,
            &self.terms,
            &self.posting,
        ]
    }
}

/// Rows one `INSERT` of [`insert_messages`] carries at most (of the protocol's 65,535
/// parameters).
const INSERT_ROWS: usize = 512;

/// Inserts new messages, many rows to a statement: a batch costs a few round trips, not one
/// per message.
pub(super) fn insert_messages(
    client: &mut impl GenericClient,
    messages: &[MessageRecord],
) -> StoreResult<()> {
    for chunk in messages.chunks(INSERT_ROWS) {
        let values: Vec<MessageValues> = chunk.iter().map(MessageValues::of).collect();
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().flat_map(|v| v.params()).collect();
        let rows: Vec<String> = (0..chunk.len())
            .map(|row| {
                let first = row * MESSAGE_VALUES + 1;
                let placeholders: Vec<String> = (first..first + MESSAGE_VALUES)
                    .map(|at| format!("${at}"))
                    .collect();
                format!("({})", placeholders.join(", "))
            })
            .collect();
        client.execute(
            &format!(
                "INSERT INTO messages ({MESSAGE_COLUMNS}, terms, posting) VALUES {}",
                rows.join(", ")
            ),
            &params,
        )?;
    }
    Ok(())
}

/// Writes one message with a statement from [`prepare_message_write`].
pub(super) fn write_message(
    client: &mut impl GenericClient,
    statement: &Statement,
    message: &MessageRecord,
) -> StoreResult<()> {
    client.execute(statement, &MessageValues::of(message).params())?;
    Ok(())
}

pub(super) fn claim(row: &Row) -> StoreResult<ClaimRecord> {
    Ok(ClaimRecord {
        nickname_key: row.try_get("nickname_key")?,
        nickname: row.try_get("nickname")?,
        login_id: row.try_get("login_id")?,
        released_at: row.try_get("released_at")?,
        password_hash: row.try_get("password_hash")?,
    })
}

pub(super) fn upsert_claim(
    client: &mut impl GenericClient,
    claim: &ClaimRecord,
) -> StoreResult<()> {
    client.execute(
        &format!(
            "INSERT INTO nickname_claims ({CLAIM_COLUMNS}) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (nickname_key) DO UPDATE
                 SET nickname = $2, login_id = $3, released_at = $4, password_hash = $5"
        ),
        &[
            &claim.nickname_key,
            &claim.nickname,
            &claim.login_id,
            &claim.released_at,
            &claim.password_hash,
        ],
    )?;
    Ok(())
}

pub(super) fn bot(row: &Row) -> StoreResult<BotRecord> {
    Ok(BotRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner_login: row.try_get("owner_login")?,
        token_hash: row.try_get("token_hash")?,
        webhook_url: row.try_get("webhook_url")?,
        origin: row.try_get("origin")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts a bot; with `replace`, overwrites the one with its id instead of failing.
pub(super) fn write_bot(
    client: &mut impl GenericClient,
    bot: &BotRecord,
    replace: bool,
) -> StoreResult<()> {
    let on_conflict = if replace {
        "ON CONFLICT (id) DO UPDATE SET name = $2, owner_login = $3, token_hash = $4,
             webhook_url = $5, origin = $6, created_at = $7"
    } else {
        ""
    };
    client.execute(
        &format!(
            "INSERT INTO bots ({BOT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) {on_conflict}"
        ),
        &[
            &bot.id,
            &bot.name,
            &bot.owner_login,
            &bot.token_hash,
            &bot.webhook_url,
            &bot.origin,
            &bot.created_at,
        ],
    )?;
    Ok(())
}

pub(super) fn session(row: &Row) -> StoreResult<SessionRecord> {
    Ok(SessionRecord {
        id: row.try_get("id")?,
        login_id: row.try_get("login_id")?,
        data: row.try_get("data")?,
        expires_at: row.try_get("expires_at")?,
    })
}

pub(super) fn file(row: &Row) -> StoreResult<FileRecord> {
    Ok(FileRecord {
        hash: row.try_get("hash")?,
        size: row.try_get::<_, i64>("size")?.max(0) as u64,
        media_type: row.try_get("media_type")?,
        image: row.try_get::<_, Option<Json<_>>>("image")?.map(|j| j.0),
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn dedup(row: &Row) -> StoreResult<DedupRecord> {
    Ok(DedupRecord {
        key: row.try_get("key")?,
        room: slug(row.try_get("room")?)?,
        id: row.try_get("id")?,
    })
}

/// Inserts resend records, one prepared statement for all of them.
pub(super) fn write_client_ids(
    client: &mut impl GenericClient,
    records: &[DedupRecord],
) -> StoreResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let insert = client.prepare("INSERT INTO client_ids (key, room, id) VALUES ($1, $2, $3)")?;
    for record in records {
        client.execute(&insert, &[&record.key, &record.room.as_str(), &record.id])?;
    }
    Ok(())
}
