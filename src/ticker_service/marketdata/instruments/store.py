"""A broker's instrument dump in PostgreSQL (`instrument_dumps`, `instruments`), read by every instance.

Replacing a dump is one transaction (delete, COPY, stamp), so a reader sees the old list or the new
one, never a mix. Kite's dump has tens of thousands of rows: COPY, not one INSERT per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from ticker_service.instruments import Instrument, to_decimal
from ticker_service.marketdata.instruments.filters import ORDER_BY, InstrumentFilter

COLUMNS = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM instruments"
BY_TOKENS = f"{_SELECT} WHERE account_id = $1 AND instrument_token = ANY($2::bigint[])"
BY_KEYS = (
    f"{_SELECT} WHERE account_id = $1 AND (exchange, tradingsymbol) IN (SELECT * FROM unnest($2::text[], $3::text[]))"
)
# the filters' condition and the page's parameter numbers are filled in per request (`filters.where`)
SEARCH = _SELECT + " WHERE account_id = $1 AND {condition} ORDER BY " + ORDER_BY + " LIMIT ${limit} OFFSET ${offset}"


def _decimal(value: Any) -> Decimal:
    return to_decimal(value if value not in (None, "") else 0) or Decimal(0)


def _expiry(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None


def parse_dump_row(row: Mapping[str, Any]) -> Instrument:
    """One instrument of kiteconnect's `instruments()` (numbers parsed, expiry a date or '')."""
    return Instrument(
        instrument_token=int(row["instrument_token"]),
        exchange_token=int(row.get("exchange_token") or 0),
        tradingsymbol=str(row["tradingsymbol"]),
        name=str(row.get("name") or ""),
        last_price=_decimal(row.get("last_price")),
        expiry=_expiry(row.get("expiry")),
        strike=_decimal(row.get("strike")),
        tick_size=_decimal(row.get("tick_size")),
        lot_size=int(row.get("lot_size") or 0),
        instrument_type=str(row.get("instrument_type") or ""),
        segment=str(row.get("segment") or ""),
        exchange=str(row.get("exchange") or ""),
    )


def _record(account_id: str, i: Instrument) -> tuple[object, ...]:
    return (account_id, *(getattr(i, column) for column in COLUMNS))


def _instrument(row: asyncpg.Record) -> Instrument:
    return Instrument(**{column: row[column] for column in COLUMNS})


async def replace_dump(conn: asyncpg.Connection, account_id: str, instruments: Sequence[Instrument]) -> None:
    """Store `instruments` as the account's dump, fetched now (the database's clock)."""
    unique = {i.instrument_token: i for i in instruments}  # a token listed twice: its last row
    async with conn.transaction():
        await conn.execute("DELETE FROM instruments WHERE account_id = $1", account_id)
        await conn.copy_records_to_table(
            "instruments", records=[_record(account_id, i) for i in unique.values()], columns=["account_id", *COLUMNS]
        )
        await conn.execute(
            "INSERT INTO instrument_dumps (account_id, fetched_at, instrument_count) VALUES ($1, now(), $2) "
            "ON CONFLICT (account_id) DO UPDATE SET fetched_at = now(), instrument_count = EXCLUDED.instrument_count",
            account_id,
            len(unique),
        )


async def fetched_at(pool: asyncpg.Pool | asyncpg.Connection, account_id: str) -> datetime | None:
    value: datetime | None = await pool.fetchval(
        "SELECT fetched_at FROM instrument_dumps WHERE account_id = $1", account_id
    )
    return value


async def by_tokens(pool: asyncpg.Pool, account_id: str, tokens: Sequence[int]) -> dict[int, Instrument]:
    rows = await pool.fetch(BY_TOKENS, account_id, list(tokens))
    return {row["instrument_token"]: _instrument(row) for row in rows}


async def by_keys(
    pool: asyncpg.Pool, account_id: str, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Instrument]:
    rows = await pool.fetch(
        BY_KEYS,
        account_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(row["exchange"], row["tradingsymbol"]): _instrument(row) for row in rows}


async def search(
    pool: asyncpg.Pool, account_id: str, filters: InstrumentFilter, limit: int, offset: int
) -> list[Instrument]:
    condition, args = filters.where(2)
    n = len(args) + 2
    rows = await pool.fetch(
        SEARCH.format(condition=condition, limit=n, offset=n + 1),
        account_id,
        *args,
        limit,
        offset,
    )
    return [_instrument(row) for row in rows]
