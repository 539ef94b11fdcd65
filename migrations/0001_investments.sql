-- The investments API's table (CQRS: written on the primary, read on either node).
-- `lsn` is the WAL insert position when the row was inserted (at or before its commit record).
CREATE TABLE IF NOT EXISTS investments (
    id               BIGSERIAL PRIMARY KEY,
    key              TEXT      NOT NULL UNIQUE,
    coin             TEXT      NOT NULL,
    amount_usd_cents BIGINT    NOT NULL,
    price_usd_micros BIGINT    NOT NULL,
    lsn              BIGINT    NOT NULL
);
