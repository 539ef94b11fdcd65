-- The gateway's tables: the catalogue a query reads, and the queries themselves.
CREATE TABLE producto (
  id      serial PRIMARY KEY,
  nombre  text NOT NULL,
  precio  numeric(10, 2) NOT NULL,
  stock   integer NOT NULL
);
CREATE TABLE consulta (
  id           serial PRIMARY KEY,
  producto_id  integer NOT NULL,
  status       text NOT NULL DEFAULT 'pending',
  resultado    text,
  creada       timestamptz NOT NULL DEFAULT now(),
  completada   timestamptz
);
INSERT INTO producto (nombre, precio, stock)
SELECT 'producto ' || n, (n * 7 % 100) + 0.99, n * 13 % 50 FROM generate_series(1, 20) AS n;
