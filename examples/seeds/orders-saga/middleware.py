"""The saga's middleware: FastAPI behind nginx. POST /orders {sku, qty} runs the saga in order,
each step one HTTP call with a 2 s timeout and no retry:

  1. reserve the stock       (inventory)   fails: 409 when out of stock, else 502; nothing to undo
  2. create the order        (orders)      `pending`; fails: release the stock, 502
  3. write the report        (reports)     fails: compensate, 502
  4. complete the order      (orders)      fails: compensate, 502

Compensating = release the stock, then mark the order `compensated`, each tried once; a
compensation that fails is logged and given up. A step whose answer never came (a timeout) is
not undone: the middleware cannot tell it happened. The answer on success is 201
{order_id, status: completed}."""
import json
import logging
import os
import urllib.error
import urllib.request

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

INVENTORY_URL = os.environ.get("INVENTORY_URL", "http://inventory:8000")
ORDERS_URL = os.environ.get("ORDERS_URL", "http://orders:3000")
REPORTS_URL = os.environ.get("REPORTS_URL", "http://reports:8000")
TIMEOUT_S = float(os.environ.get("CALL_TIMEOUT_S", "2"))

log = logging.getLogger("middleware")
logging.basicConfig(level=logging.INFO)
app = FastAPI(title="middleware")


class Order(BaseModel):
    sku: str
    qty: int


def call(method: str, url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
        return json.load(answer)


def compensate(order: Order, order_id):
    try:
        call("POST", f"{INVENTORY_URL}/stock/{order.sku}/release", {"qty": order.qty})
    except Exception as e:
        log.error("compensation: releasing %s x%d failed: %s", order.sku, order.qty, e)
    if order_id is not None:
        try:
            call("PATCH", f"{ORDERS_URL}/orders/{order_id}", {"status": "compensated"})
        except Exception as e:
            log.error("compensation: marking order %s compensated failed: %s", order_id, e)


@app.post("/orders", status_code=201)
def place(order: Order):
    try:
        call("POST", f"{INVENTORY_URL}/stock/{order.sku}/reserve", {"qty": order.qty})
    except urllib.error.HTTPError as e:
        if e.code == 409:
            raise HTTPException(status_code=409, detail=f"out of stock: {order.sku}")
        raise HTTPException(status_code=502, detail=f"inventory: {e}")
    except Exception as e:
        raise HTTPException(status_code=502, detail=f"inventory: {e}")
    try:
        order_id = call("POST", f"{ORDERS_URL}/orders", {"sku": order.sku, "qty": order.qty})["id"]
    except Exception as e:
        compensate(order, None)
        raise HTTPException(status_code=502, detail=f"orders: {e}")
    try:
        call("POST", f"{REPORTS_URL}/reports", {"order_id": order_id, "sku": order.sku, "qty": order.qty})
        call("PATCH", f"{ORDERS_URL}/orders/{order_id}", {"status": "completed"})
    except Exception as e:
        compensate(order, order_id)
        raise HTTPException(status_code=502, detail=f"order {order_id}: {e}")
    return {"order_id": order_id, "status": "completed"}


@app.get("/health")
def health():
    return {"ok": True}
