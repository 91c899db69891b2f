-- One-time links that log another device in, shared so that a link made through one
-- instance works through any. Only a hash of each token is kept.

CREATE TABLE device_links (
    token_hash text   PRIMARY KEY,
    login_id   text   NOT NULL,
    nickname   text   NOT NULL,
    expires_at bigint NOT NULL
);

CREATE INDEX device_links_by_login ON device_links (login_id, expires_at);
