-- Attachments' bytes (and their thumbnails'), so that no instance needs a shared file
-- system: a file is content-addressed by the hash of its bytes as on disk, in chunks that
-- are written and read one at a time. `file_bytes` is written last, in the same commit:
-- a key there has every one of its chunks.

CREATE TABLE file_chunks (
    key   text    NOT NULL,
    seq   integer NOT NULL,
    bytes bytea   NOT NULL,
    PRIMARY KEY (key, seq)
);

-- Images and archives are compressed already: no point in trying again.
ALTER TABLE file_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;

CREATE TABLE file_bytes (
    key    text    PRIMARY KEY,
    size   bigint  NOT NULL,
    chunks integer NOT NULL
);
