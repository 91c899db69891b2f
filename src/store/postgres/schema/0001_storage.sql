-- The whole of `Storage` for one instance. Every message key starts with its room, and a
-- room's row carries `last_id` and `counted`, so that a later version can assign ids inside
-- the append transaction by locking the room's row, and Citus could distribute by room.
-- Parts that are only ever read whole (mention marks, direct members, reactions, a reply's
-- preview, an attachment's description) are JSONB; what is queried has columns.

CREATE TABLE rooms (
    slug          text PRIMARY KEY,
    name          text    NOT NULL,
    topic         text    NOT NULL,
    created_by    text    NOT NULL,
    created_at    bigint  NOT NULL,
    last_id       bigint  NOT NULL,
    counted       bigint  NOT NULL,
    last_activity bigint  NOT NULL,
    mentions      jsonb   NOT NULL,
    archived      boolean NOT NULL,
    members       jsonb   NOT NULL
);

CREATE TABLE messages (
    room       text    NOT NULL,
    id         bigint  NOT NULL,
    kind       text    NOT NULL CHECK (kind IN ('user', 'system')),
    author     text    NOT NULL,
    login      text    NOT NULL,
    body       text    NOT NULL,
    created_at bigint  NOT NULL,
    client_id  text,
    edited_at  bigint,
    deleted    boolean NOT NULL,
    reactions  jsonb   NOT NULL,
    reply_to   jsonb,
    bot        boolean NOT NULL,
    attachment jsonb,
    mentioned  text[]  NOT NULL,
    -- The index terms chat-domain computes (prefixes included); empty for system lines and
    -- deleted messages, which search never finds.
    terms      text[]  NOT NULL,
    -- Time, room and id as one string (see `search_index::posting`): search's order and its
    -- page cursor, compared byte by byte.
    posting    text COLLATE "C" NOT NULL,
    PRIMARY KEY (room, id)
);
-- A search asks for the messages holding all of its terms: `terms @> lookups`. An array of
-- chat-domain's own terms rather than a tsvector, whose parser splits and folds words its
-- own way (CJK, NFKC, the caps on words per message), so both backends find the same; and
-- in the message's row rather than a table of terms, so a message costs one insert and
-- "every word" is one containment test.
CREATE INDEX messages_terms ON messages USING gin (terms);
-- Newest first, for terms so common that walking in order beats collecting every match.
CREATE INDEX messages_posting ON messages (posting);

-- A `(login, client_id)` pair, and the message it was stored as.
CREATE TABLE client_ids (
    key  text PRIMARY KEY,
    room text   NOT NULL,
    id   bigint NOT NULL
);

-- What is known of stored attachment bytes; the bytes stay on the instance's disk for now.
CREATE TABLE files (
    hash       text PRIMARY KEY,
    size       bigint NOT NULL,
    media_type text   NOT NULL,
    image      jsonb,
    created_at bigint NOT NULL
);

CREATE TABLE readers (
    login_id   text PRIMARY KEY,
    muted      text[] NOT NULL,
    left_rooms text[] NOT NULL
);

-- Per login and room: the newest id seen and the room's count of counted messages at it.
-- Either may be missing, as in `ReaderRecord`'s two maps.
CREATE TABLE read_marks (
    login_id     text NOT NULL REFERENCES readers ON DELETE CASCADE,
    room         text NOT NULL,
    last_read    bigint,
    read_counted bigint,
    PRIMARY KEY (login_id, room)
);

CREATE TABLE settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE nickname_claims (
    nickname_key  text PRIMARY KEY,
    nickname      text NOT NULL,
    login_id      text NOT NULL,
    released_at   bigint,
    password_hash text
);

CREATE TABLE bots (
    id          text PRIMARY KEY,
    name        text   NOT NULL,
    owner_login text   NOT NULL,
    token_hash  text,
    webhook_url text,
    origin      text   NOT NULL,
    created_at  bigint NOT NULL
);

CREATE TABLE sessions (
    id         text PRIMARY KEY,
    login_id   text,
    -- tower-sessions' map as JSON text, kept byte for byte.
    data       text   NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX sessions_login_id ON sessions (login_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
