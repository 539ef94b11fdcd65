-- The investments table, created on the primary (the replicas copy it with the base backup).
CREATE TABLE investments (
  id          bigserial PRIMARY KEY,
  coin        text NOT NULL,
  amount_usd  numeric(14, 2) NOT NULL,
  price_usd   numeric(18, 8) NOT NULL,
  units       numeric(24, 12) NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
