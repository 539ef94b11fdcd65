"""The reports app: FastAPI and pymysql on MariaDB (standing in for MySQL, which Debian lacks; the
same protocol), through HAProxy. One connection per request, autocommit; no retries.

POST /reports {order_id, sku, qty}   records one sale"""
import os

import pymysql
from fastapi import FastAPI
from pydantic import BaseModel

DB = dict(host=os.environ.get("DB_HOST", "rep-haproxy"), port=int(os.environ.get("DB_PORT", "3306")),
          user="app", password="app", database="reports", autocommit=True,
          connect_timeout=2, read_timeout=5, write_timeout=5)

app = FastAPI(title="reports")


class Sale(BaseModel):
    order_id: int
    sku: str
    qty: int


@app.post("/reports", status_code=201)
def report(sale: Sale):
    conn = pymysql.connect(**DB)
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO sales (order_id, sku, qty) VALUES (%s, %s, %s)",
                        (sale.order_id, sale.sku, sale.qty))
            return {"id": cur.lastrowid, "order_id": sale.order_id}
    finally:
        conn.close()
