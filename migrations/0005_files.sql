-- The files' metadata: one row per upload (unique on the client's idempotency key), the
-- thumbnails group's mark (`thumbnail`, the derived object's key, set once), and the audit
-- group's appends. `audit` has no unique key on purpose: "at most once per file and event" is
-- the subscriber's choice (`FileStore::audit`'s `once`, under the file row's lock), so a
-- non-idempotent subscriber can be planted and caught by the count of rows per file.
CREATE TABLE IF NOT EXISTS files (
    id         BIGSERIAL PRIMARY KEY,
    key        TEXT   NOT NULL UNIQUE,
    object_key TEXT   NOT NULL,
    size       BIGINT NOT NULL,
    checksum   TEXT   NOT NULL,
    thumbnail  TEXT
);

CREATE TABLE IF NOT EXISTS audit (
    id      BIGSERIAL PRIMARY KEY,
    file_id BIGINT NOT NULL REFERENCES files (id),
    event   TEXT   NOT NULL
);

CREATE INDEX IF NOT EXISTS audit_file_event ON audit (file_id, event);
