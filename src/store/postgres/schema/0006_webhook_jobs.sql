-- Mentions of bots that have a webhook, queued in the commit that stores the message: any
-- instance's deliverer takes them, and one that dies loses none. A job taken is leased to
-- its instance until `taken_until`; past it, another instance may take it over.

CREATE TABLE webhook_jobs (
    seq         bigserial   NOT NULL,
    room        text        NOT NULL,
    message_id  bigint      NOT NULL,
    bot_id      text        NOT NULL,
    taken_by    text,
    taken_until timestamptz,
    PRIMARY KEY (room, message_id, bot_id)
);
