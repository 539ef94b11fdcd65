-- One row per saga: its request (to run it again after its orchestrator is gone), the
-- orchestrator holding it and until when, and its outcome once finished (NULL while unfinished).
-- An unfinished saga whose lease ran out is claimed by a live orchestrator (`stack::orders`).
CREATE TABLE IF NOT EXISTS sagas (
    order_id    TEXT        PRIMARY KEY,
    sku         TEXT        NOT NULL,
    qty         BIGINT      NOT NULL,
    owner       TEXT        NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL,
    outcome     TEXT
);
CREATE INDEX IF NOT EXISTS sagas_unfinished ON sagas (lease_until) WHERE outcome IS NULL;
