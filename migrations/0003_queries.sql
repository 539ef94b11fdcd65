-- The query gateway's rows and the workers' effects. `effects` counts how many times a worker
-- applied a query's effect: exactly-once processing keeps it at 1.
CREATE TABLE IF NOT EXISTS queries (
    id      BIGSERIAL PRIMARY KEY,
    key     TEXT   NOT NULL UNIQUE,
    sku     TEXT   NOT NULL,
    status  TEXT   NOT NULL,
    result  TEXT,
    effects BIGINT NOT NULL DEFAULT 0
);
