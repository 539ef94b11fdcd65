"""The inventory app: FastAPI and pymysql on MariaDB, through HAProxy (the primary, or the replica
once HAProxy gives up on the primary). One connection per request, autocommit; no retries.

POST /stock/{sku}/reserve {qty}   takes qty units if that many are left (409 otherwise)
POST /stock/{sku}/release {qty}   gives qty units back (the saga's compensation)
GET  /stock                       every product's stock"""
import os

import pymysql
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

DB = dict(host=os.environ.get("DB_HOST", "inv-haproxy"), port=int(os.environ.get("DB_PORT", "3306")),
          user="app", password="app", database="inventory", autocommit=True,
          connect_timeout=2, read_timeout=5, write_timeout=5)

app = FastAPI(title="inventory")


class Quantity(BaseModel):
    qty: int


def execute(sql: str, args: tuple) -> int:
    conn = pymysql.connect(**DB)
    try:
        with conn.cursor() as cur:
            return cur.execute(sql, args)
    finally:
        conn.close()


@app.post("/stock/{sku}/reserve")
def reserve(sku: str, q: Quantity):
    if execute("UPDATE products SET stock = stock - %s WHERE sku = %s AND stock >= %s", (q.qty, sku, q.qty)) == 0:
        raise HTTPException(status_code=409, detail=f"not enough {sku}")
    return {"sku": sku, "reserved": q.qty}


@app.post("/stock/{sku}/release")
def release(sku: str, q: Quantity):
    if execute("UPDATE products SET stock = stock + %s WHERE sku = %s", (q.qty, sku)) == 0:
        raise HTTPException(status_code=404, detail=f"no product {sku}")
    return {"sku": sku, "released": q.qty}


@app.get("/stock")
def stock():
    conn = pymysql.connect(**DB)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT sku, stock FROM products ORDER BY sku")
            return [{"sku": s, "stock": n} for s, n in cur.fetchall()]
    finally:
        conn.close()
