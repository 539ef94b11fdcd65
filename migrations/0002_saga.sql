-- The orders saga's participants and its step log. Each participant would own its database in
-- production; here they share the cluster, one table each.
CREATE TABLE IF NOT EXISTS products (
    sku   TEXT   PRIMARY KEY,
    stock BIGINT NOT NULL CHECK (stock >= 0)
);
-- One row per order ever reserved or compensated, never deleted: `restocked` rows are
-- tombstones, so a late or retried reserve of a compensated order takes nothing.
CREATE TABLE IF NOT EXISTS reservations (
    order_id  TEXT    PRIMARY KEY,
    sku       TEXT    NOT NULL,
    qty       BIGINT  NOT NULL,
    restocked BOOLEAN NOT NULL
);
-- Orders and reports: `cancelled` rows are tombstones (a cancelled order is never re-created).
CREATE TABLE IF NOT EXISTS orders (
    order_id  TEXT    PRIMARY KEY,
    sku       TEXT    NOT NULL,
    qty       BIGINT  NOT NULL,
    cancelled BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    order_id  TEXT    PRIMARY KEY,
    sku       TEXT    NOT NULL,
    qty       BIGINT  NOT NULL,
    cancelled BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS saga_log (
    id       BIGSERIAL PRIMARY KEY,
    order_id TEXT      NOT NULL,
    step     TEXT      NOT NULL
);
CREATE INDEX IF NOT EXISTS saga_log_order ON saga_log (order_id, id);
