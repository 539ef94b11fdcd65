"""The investments API (CQRS): POST /invest asks the price service for the coin's price and
records the investment on the PostgreSQL primary; GET /history reads the replicas.

As the original describes it: FastAPI and psycopg2, one connection per request; writes to the
primary, reads to a replica (round robin over REPLICA_URLS); no retries, no failover, no cache of
the last price."""
import itertools
import json
import os
import urllib.request

import psycopg2
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

PRIMARY_URL = os.environ.get("PRIMARY_URL", "postgresql://postgres:postgres@pg-primary:5432/postgres")
REPLICA_URLS = os.environ.get(
    "REPLICA_URLS",
    "postgresql://postgres:postgres@pg-replica-1:5432/postgres postgresql://postgres:postgres@pg-replica-2:5432/postgres",
).split()
PRICE_URL = os.environ.get("PRICE_URL", "http://pricefeed:8001/simple/price")

app = FastAPI(title="investments")
replicas = itertools.cycle(REPLICA_URLS)


class Investment(BaseModel):
    coin: str
    amount_usd: float


def current_price(coin: str) -> float:
    url = f"{PRICE_URL}?ids={coin}&vs_currencies=usd"
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return float(json.load(answer)[coin]["usd"])
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise HTTPException(status_code=422, detail=f"unknown coin {coin}")
        raise


@app.post("/invest")
def invest(investment: Investment):
    price = current_price(investment.coin)
    units = investment.amount_usd / price
    conn = psycopg2.connect(PRIMARY_URL)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO investments (coin, amount_usd, price_usd, units) VALUES (%s, %s, %s, %s) RETURNING id",
                (investment.coin, investment.amount_usd, price, units),
            )
            new_id = cur.fetchone()[0]
    finally:
        conn.close()
    return {"id": new_id, "coin": investment.coin, "amount_usd": investment.amount_usd,
            "price_usd": price, "units": units}


@app.get("/history")
def history():
    conn = psycopg2.connect(next(replicas))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT id, coin, amount_usd, price_usd, units FROM investments ORDER BY id DESC")
            rows = cur.fetchall()
    finally:
        conn.close()
    return [{"id": r[0], "coin": r[1], "amount_usd": float(r[2]), "price_usd": float(r[3]), "units": float(r[4])}
            for r in rows]
