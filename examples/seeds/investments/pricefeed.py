"""A stand-in for the public coin price API the original calls (CoinGecko's
GET /simple/price?ids=bitcoin&vs_currencies=usd), with fixed prices, so no registry or
network is needed."""
from fastapi import FastAPI, HTTPException

PRICES = {"bitcoin": 43000.0, "ethereum": 2300.0, "solana": 95.0, "cardano": 0.55, "dogecoin": 0.09}

app = FastAPI(title="pricefeed")


@app.get("/simple/price")
def price(ids: str, vs_currencies: str = "usd"):
    found = {coin: {"usd": PRICES[coin]} for coin in ids.split(",") if coin in PRICES}
    if not found:
        raise HTTPException(status_code=404, detail="unknown coin")
    return found
