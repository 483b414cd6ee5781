"""Charges of known paper trades equal the figures worked out by hand from Zerodha's rate table (the
rates are written out here, not read from the code), and positions report P&L gross and net of them."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from litestar.testing import AsyncTestClient

from tests.conftest import SPEC_ORDER, make_client


def paise(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def fill(c: AsyncTestClient[Any], order: dict[str, Any]) -> dict[str, Any]:
    r = await c.post("/orders/place?wait=5", json=order)
    assert r.status_code == 201 and r.json()["order"]["status"] == "COMPLETE", r.text
    [trade] = (await c.get(f"/orders/{r.json()['order_id']}/trades")).json()
    return dict(trade)


async def test_an_intraday_nifty_future_round_trip(database_url: str) -> None:
    async with make_client(database_url, {"primary": {"funds": 1e7}}) as c:
        bought = await fill(c, SPEC_ORDER | {"product": "MIS"})
        sold = await fill(c, SPEC_ORDER | {"product": "MIS", "transaction_type": "SELL"})
        [position] = (await c.get("/portfolio/positions")).json()["net"]
    worked_out = Decimal(0)
    for trade in (bought, sold):
        value = 50 * Decimal(str(trade["average_price"]))
        brokerage = paise(min(value * Decimal("0.0003"), Decimal(20)))  # 0.03 % or 20 a order: 20 here
        assert brokerage == 20
        stt = paise(value * Decimal("0.0005")) if trade is sold else Decimal(0)  # 0.05 % on the sell side
        exchange = paise(value * Decimal("0.0000183"))  # NSE futures 0.00183 %
        sebi = paise(value * 10 / 10_000_000)  # 10 a crore
        stamp = paise(value * Decimal("0.00002")) if trade is bought else Decimal(0)  # 0.002 % on the buy side
        gst = paise((brokerage + sebi + exchange) * Decimal("0.18"))
        expected = {
            "brokerage": brokerage,
            "stt": stt,
            "exchange_turnover_charge": exchange,
            "sebi_turnover_charge": sebi,
            "stamp_duty": stamp,
            "gst": gst,
        }
        got = {k: Decimal(str(v)) for k, v in trade["charges"].items()}
        assert got == expected | {"total": sum(expected.values(), Decimal(0))}
        worked_out += sum(expected.values(), Decimal(0))
    assert Decimal(str(position["charges"])) == worked_out
    gross = 50 * (Decimal(str(sold["average_price"])) - Decimal(str(bought["average_price"])))
    assert Decimal(str(position["pnl"])) == gross
    assert Decimal(str(position["pnl_net"])) == gross - worked_out


async def test_a_delivery_equity_buy(database_url: str) -> None:
    order = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 10}
    async with make_client(database_url) as c:
        trade = await fill(c, order | {"product": "CNC", "order_type": "MARKET"})
        [position] = (await c.get("/portfolio/positions")).json()["net"]
    value = 10 * Decimal(str(trade["average_price"]))
    exchange = paise(value * Decimal("0.0000307"))  # NSE equity 0.00307 %
    sebi = paise(value / 1_000_000)
    expected = {
        "brokerage": Decimal(0),  # delivery is free of brokerage
        "stt": paise(value * Decimal("0.001")),  # 0.1 % on buy and sell
        "exchange_turnover_charge": exchange,
        "sebi_turnover_charge": sebi,
        "stamp_duty": paise(value * Decimal("0.00015")),  # 0.015 % on the buy side
        "gst": paise((sebi + exchange) * Decimal("0.18")),
    }
    total = sum(expected.values(), Decimal(0))
    assert {k: Decimal(str(v)) for k, v in trade["charges"].items()} == expected | {"total": total}
    assert Decimal(str(position["charges"])) == total
    assert Decimal(str(position["pnl_net"])) == Decimal(str(position["pnl"])) - total
