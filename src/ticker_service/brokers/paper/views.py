"""The paper account's daily views in Kite's shapes: holdings (T+1 settlement), margins, an order's trades.

Holdings are the delivery (CNC) trades: a buy is `t1_quantity` from its trade day until the next
trading day (NSE settles equity T+1), then settled `quantity`. Shares sold today are `used_quantity`.
Margins are the account's funds less what its open orders and positions block (`utilised.debits`),
the same figure the placement's funds check uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ticker_service.instruments import Instrument
from ticker_service.marketdata.instruments.expiry import Holidays
from ticker_service.timeutil import IST

KITE_TIME = "%Y-%m-%d %H:%M:%S"

CNC_TRADES = """
SELECT exchange, tradingsymbol, transaction_type, quantity, price, filled_at
FROM paper_trades WHERE account_id = $1 AND product = 'CNC'
ORDER BY trade_id
"""
ORDER_TRADES = """
SELECT t.trade_id, t.order_id, t.exchange, t.tradingsymbol, t.instrument_token, t.product, t.transaction_type,
    t.quantity, t.price, t.filled_at, o.order_timestamp
FROM paper_trades AS t JOIN paper_orders AS o ON o.order_id = t.order_id
WHERE t.order_id = $1 AND t.account_id = $2
ORDER BY t.trade_id
"""
EXPOSURE = """
SELECT exchange, tradingsymbol, product, net_quantity, open_buy, open_sell FROM paper_exposure WHERE account_id = $1
"""


def next_trading_day(day: date, holidays: Holidays) -> date:
    nxt = day + timedelta(days=1)
    while not holidays.is_trading_day(nxt):
        nxt += timedelta(days=1)
    return nxt


@dataclass
class _Holding:
    settled_buys: int = 0
    t1: int = 0
    sold_before: int = 0
    sold_today: int = 0
    buy_value: Decimal = Decimal(0)
    buy_quantity: int = 0
    first: datetime | None = None
    trades: list[Mapping[str, Any]] = field(default_factory=list)


def holdings(
    rows: Iterable[Mapping[str, Any]],
    today: date,
    holidays: Holidays,
    instrument: Callable[[str, str], Instrument | None],
    last_price: Callable[[Instrument], Decimal],
) -> list[dict[str, Any]]:
    """Kite's `GET /portfolio/holdings` from the account's CNC trades, as of `today` (IST)."""
    groups: dict[tuple[str, str], _Holding] = {}
    for row in rows:
        h = groups.setdefault((row["exchange"], row["tradingsymbol"]), _Holding())
        traded = row["filled_at"].astimezone(IST)
        quantity = int(row["quantity"])
        if row["transaction_type"] == "BUY":
            h.buy_value += Decimal(row["price"]) * quantity
            h.buy_quantity += quantity
            h.first = h.first or traded
            if next_trading_day(traded.date(), holidays) <= today:
                h.settled_buys += quantity
            else:
                h.t1 += quantity
        elif traded.date() >= today:
            h.sold_today += quantity
        else:
            h.sold_before += quantity
    out = []
    for (exchange, symbol), h in groups.items():
        settled = h.settled_buys - h.sold_before
        held = settled + h.t1 - h.sold_today
        if settled + h.t1 <= 0:
            continue
        found = instrument(exchange, symbol)
        last = last_price(found) if found else Decimal(0)
        close = found.last_price if found else Decimal(0)
        average = h.buy_value / h.buy_quantity if h.buy_quantity else Decimal(0)
        change = last - close
        out.append(
            {
                "tradingsymbol": symbol,
                "exchange": exchange,
                "instrument_token": found.instrument_token if found else 0,
                "isin": "",
                "product": "CNC",
                "price": 0,
                "quantity": settled,
                "used_quantity": h.sold_today,
                "t1_quantity": h.t1,
                "realised_quantity": settled,
                "authorised_quantity": 0,
                "authorised_date": h.first.strftime(KITE_TIME) if h.first else None,
                "opening_quantity": settled,
                "collateral_quantity": 0,
                "collateral_type": "",
                "discrepancy": False,
                "average_price": round(float(average), 4),
                "last_price": float(last),
                "close_price": float(close),
                "pnl": round(float((last - average) * held), 2),
                "day_change": float(change),
                "day_change_percentage": round(float(change / close * 100), 4) if close else 0.0,
            }
        )
    return sorted(out, key=lambda h: (h["exchange"], h["tradingsymbol"]))


def segment_margin(
    opening: Decimal, blocked: Decimal, *, realised: Decimal = Decimal(0), enabled: bool = True
) -> dict[str, Any]:
    """One segment of Kite's `GET /user/margins`: `net` is what is left to trade with."""
    net = opening - blocked + realised
    return {
        "enabled": enabled,
        "net": round(float(net), 2),
        "available": {
            "adhoc_margin": 0,
            "cash": round(float(opening), 2),
            "opening_balance": round(float(opening), 2),
            "live_balance": round(float(net), 2),
            "collateral": 0,
            "intraday_payin": 0,
        },
        "utilised": {
            "debits": round(float(blocked), 2),
            "exposure": 0,
            "m2m_realised": round(float(realised), 2),
            "m2m_unrealised": 0,
            "option_premium": 0,
            "payout": 0,
            "span": 0,
            "holding_sales": 0,
            "turnover": 0,
            "liquid_collateral": 0,
            "stock_collateral": 0,
            "delivery": 0,
        },
    }


def order_trades(rows: Iterable[Mapping[str, Any]], costs: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Kite's `GET /orders/{order_id}/trades` (timestamps IST without a zone, as Kite writes them), each
    fill with what it cost (`charges`, beyond Kite's fields)."""
    out = []
    for row, cost in zip(rows, costs, strict=True):
        filled = row["filled_at"].astimezone(IST).strftime(KITE_TIME)
        ordered = row["order_timestamp"].astimezone(IST).strftime(KITE_TIME) if row["order_timestamp"] else filled
        out.append(
            {
                "trade_id": str(row["trade_id"]),
                "order_id": row["order_id"],
                "exchange": row["exchange"],
                "tradingsymbol": row["tradingsymbol"],
                "instrument_token": int(row["instrument_token"]),
                "product": row["product"],
                "average_price": float(row["price"]),
                "quantity": int(row["quantity"]),
                "exchange_order_id": f"1{row['order_id']}",
                "transaction_type": row["transaction_type"],
                "fill_timestamp": filled,
                "order_timestamp": ordered[11:],
                "exchange_timestamp": filled,
                "charges": cost,
            }
        )
    return out
