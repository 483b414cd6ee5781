"""Positions derived from the fake's trades, configured holdings, and margins, in Kite's shapes.

Every trade is today's, so the day and net positions agree (no overnight quantity); the fake keeps no
carry-over between days. Margins are a plausible cash view (blocked for net buys and resting buys),
not Zerodha's SPAN: enough for a client to read the shape and see money move.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ticker_service.fakekite.instruments import FakeInstrument, InstrumentTable
from ticker_service.fakekite.market import Market
from ticker_service.fakekite.orders import Order, Trade

COMMODITY_EXCHANGES = ("MCX",)


@dataclass(frozen=True, slots=True)
class Holding:
    exchange: str
    tradingsymbol: str
    quantity: int
    average_price: Decimal
    t1_quantity: int = 0
    authorised_date: str = "2025-01-01 00:00:00"


DEFAULT_HOLDINGS = (
    Holding("NSE", "INFY", 10, Decimal("1380.50")),
    Holding("NSE", "SBIN", 25, Decimal("790.10"), t1_quantity=5),
)


def _avg(value: Decimal, quantity: int) -> float:
    return float(value / quantity) if quantity else 0.0


def positions(trades: Iterable[Trade], market: Market) -> dict[str, list[dict[str, Any]]]:
    """`GET /portfolio/positions`: one entry per (instrument, product), from the day's trades."""
    groups: dict[tuple[int, str], list[Trade]] = {}
    for trade in trades:
        groups.setdefault((trade.instrument.instrument_token, trade.product), []).append(trade)
    rows = [_position(group[0].instrument, product, group, market) for (_, product), group in groups.items()]
    return {"net": rows, "day": [dict(row) for row in rows]}


def _position(instrument: FakeInstrument, product: str, trades: list[Trade], market: Market) -> dict[str, Any]:
    buy_q = sum(t.quantity for t in trades if t.transaction_type == "BUY")
    sell_q = sum(t.quantity for t in trades if t.transaction_type == "SELL")
    buy_v = sum((t.price * t.quantity for t in trades if t.transaction_type == "BUY"), Decimal(0))
    sell_v = sum((t.price * t.quantity for t in trades if t.transaction_type == "SELL"), Decimal(0))
    quantity = buy_q - sell_q
    state = market.state(instrument.instrument_token)
    last = state.last_price
    value = sell_v - buy_v
    pnl = value + quantity * last
    closed = min(buy_q, sell_q)
    realised = (
        (Decimal(str(_avg(sell_v, sell_q))) - Decimal(str(_avg(buy_v, buy_q)))) * closed if closed else Decimal(0)
    )
    if quantity > 0:
        average = _avg(buy_v, buy_q)
    elif quantity < 0:
        average = _avg(sell_v, sell_q)
    else:
        average = 0.0
    return {
        "tradingsymbol": instrument.tradingsymbol,
        "exchange": instrument.exchange,
        "instrument_token": instrument.instrument_token,
        "product": product,
        "quantity": quantity,
        "overnight_quantity": 0,
        "multiplier": 1,
        "average_price": average,
        "close_price": float(state.close),
        "last_price": float(last),
        "value": float(value),
        "pnl": float(pnl),
        "m2m": float(pnl),
        "unrealised": float(pnl - realised),
        "realised": float(realised),
        "buy_quantity": buy_q,
        "buy_price": _avg(buy_v, buy_q),
        "buy_value": float(buy_v),
        "buy_m2m": float(buy_v),
        "sell_quantity": sell_q,
        "sell_price": _avg(sell_v, sell_q),
        "sell_value": float(sell_v),
        "sell_m2m": float(sell_v),
        "day_buy_quantity": buy_q,
        "day_buy_price": _avg(buy_v, buy_q),
        "day_buy_value": float(buy_v),
        "day_sell_quantity": sell_q,
        "day_sell_price": _avg(sell_v, sell_q),
        "day_sell_value": float(sell_v),
    }


def holdings(items: Iterable[Holding], instruments: InstrumentTable, market: Market) -> list[dict[str, Any]]:
    """`GET /portfolio/holdings` (shape of zerodha/kiteconnect-mocks `holdings.json`)."""
    out: list[dict[str, Any]] = []
    for h in items:
        instrument = instruments.get(h.exchange, h.tradingsymbol)
        if instrument is None:
            continue
        state = market.state(instrument.instrument_token)
        total = h.quantity + h.t1_quantity
        change = state.last_price - state.close
        out.append(
            {
                "tradingsymbol": h.tradingsymbol,
                "exchange": h.exchange,
                "instrument_token": instrument.instrument_token,
                "isin": instrument.isin,
                "product": "CNC",
                "price": 0,
                "quantity": h.quantity,
                "used_quantity": 0,
                "t1_quantity": h.t1_quantity,
                "realised_quantity": h.quantity,
                "authorised_quantity": 0,
                "authorised_date": h.authorised_date,
                "opening_quantity": total,
                "collateral_quantity": 0,
                "collateral_type": "",
                "discrepancy": False,
                "average_price": float(h.average_price),
                "last_price": float(state.last_price),
                "close_price": float(state.close),
                "pnl": float((state.last_price - h.average_price) * total),
                "day_change": float(change),
                "day_change_percentage": float(change / state.close * 100) if state.close else 0.0,
            }
        )
    return out


def _segment_margin(opening: Decimal, blocked: Decimal, realised: Decimal) -> dict[str, Any]:
    net = opening - blocked + realised
    return {
        "enabled": True,
        "net": float(net),
        "available": {
            "adhoc_margin": 0,
            "cash": float(opening),
            "opening_balance": float(opening),
            "live_balance": float(net),
            "collateral": 0,
            "intraday_payin": 0,
        },
        "utilised": {
            "debits": float(blocked),
            "exposure": 0,
            "m2m_realised": float(realised),
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


def margins(
    opening: dict[str, Decimal], trades: Iterable[Trade], orders: Iterable[Order], market: Market
) -> dict[str, dict[str, Any]]:
    """`GET /user/margins` (`margins.json`): per segment, opening balance less what the day blocked."""
    trades = list(trades)
    out: dict[str, dict[str, Any]] = {}
    for segment in ("equity", "commodity"):

        def _in(instrument: FakeInstrument, segment: str = segment) -> bool:
            return (instrument.exchange in COMMODITY_EXCHANGES) == (segment == "commodity")

        seg_trades = [t for t in trades if _in(t.instrument)]
        rows = positions(seg_trades, market)["net"]
        blocked = sum((Decimal(str(max(0.0, -r["value"]))) for r in rows if r["quantity"] > 0), Decimal(0))
        for order in orders:
            if order.is_resting and order.transaction_type == "BUY" and _in(order.instrument):
                price = order.price or market.price(order.instrument.instrument_token)
                blocked += price * (order.quantity - order.filled_quantity)
        realised = sum((Decimal(str(r["realised"])) for r in rows), Decimal(0))
        out[segment] = _segment_margin(opening[segment], blocked, realised)
    return out
