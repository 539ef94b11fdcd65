// The orders app: Node and Express (Debian's node-express) on PostgreSQL through HAProxy, with
// node-pg's Pool at its defaults (10 connections, kept idle 10 s; no connection or query timeout).
// No retries.
//
//   POST  /orders {sku, qty}        creates a `pending` order; answers {id, status}
//   PATCH /orders/:id {status}      sets `completed` or `compensated` (404: no such order)
//   GET   /orders/:id               one order
'use strict';
const express = require('express');
const { Pool } = require('pg');

const pool = new Pool({
  connectionString: process.env.DATABASE_URL || 'postgres://postgres:postgres@ord-haproxy:5432/postgres',
});
// An idle client whose server went away emits `error`: without a listener Node would exit.
pool.on('error', (err) => console.error('orders: idle client:', err.message));

const app = express();
app.use(express.json());

app.post('/orders', async (req, res) => {
  const { sku, qty } = req.body;
  try {
    const r = await pool.query(
      "INSERT INTO orders (sku, quantity, status) VALUES ($1, $2, 'pending') RETURNING id, status", [sku, qty]);
    res.status(201).json({ id: Number(r.rows[0].id), status: r.rows[0].status });
  } catch (err) {
    res.status(500).json({ error: err.message });
  }
});

app.patch('/orders/:id', async (req, res) => {
  const { status } = req.body;
  if (status !== 'completed' && status !== 'compensated') {
    return res.status(422).json({ error: 'status is completed or compensated' });
  }
  try {
    const r = await pool.query(
      'UPDATE orders SET status = $1, updated_at = now() WHERE id = $2 RETURNING id, status', [status, req.params.id]);
    if (r.rowCount === 0) return res.status(404).json({ error: 'no such order' });
    res.json({ id: Number(r.rows[0].id), status: r.rows[0].status });
  } catch (err) {
    res.status(500).json({ error: err.message });
  }
});

app.get('/orders/:id', async (req, res) => {
  try {
    const r = await pool.query('SELECT id, sku, quantity, status FROM orders WHERE id = $1', [req.params.id]);
    if (r.rowCount === 0) return res.status(404).json({ error: 'no such order' });
    res.json({ ...r.rows[0], id: Number(r.rows[0].id) });
  } catch (err) {
    res.status(500).json({ error: err.message });
  }
});

app.get('/health', (req, res) => res.json({ ok: true }));

app.listen(Number(process.env.PORT || 3000), '0.0.0.0');
