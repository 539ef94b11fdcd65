-- The orders, created `pending` by the middleware, then `completed` or `compensated`.
CREATE TABLE orders (
  id         bigserial PRIMARY KEY,
  sku        text NOT NULL,
  quantity   integer NOT NULL CHECK (quantity > 0),
  status     text NOT NULL DEFAULT 'pending',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz
);
