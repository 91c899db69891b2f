-- Who is here and who is typing, as each instance sees its own sockets, so that every
-- instance shows everyone. Ephemeral, so unlogged: no WAL to write, and emptied by a crash.
-- An instance counts while its heartbeat is recent; one that died stops counting by itself.

CREATE UNLOGGED TABLE instances (
    id      text PRIMARY KEY,
    seen_at timestamptz NOT NULL
);

CREATE UNLOGGED TABLE presence (
    instance text   NOT NULL,
    room     text   NOT NULL,
    here     text[] NOT NULL,
    typing   text[] NOT NULL,
    PRIMARY KEY (instance, room)
);
