"""The catalogue every part of the service asks: paper from the rolled list, Kite from its dump kept
in PostgreSQL (fetched from the project's fake Kite through the real kiteconnect client, once)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import pytest

from tests.conftest import make_settings
from tests.fake_kite_thread import FakeKiteThread, kite, threaded_fakes
from tests.kite_setup import ACCOUNT
from ticker_service.brokers.kite.broker import KiteBroker
from ticker_service.brokers.kite.config import KiteAccount
from ticker_service.brokers.registry import BrokerContext
from ticker_service.db.engine import asyncpg_dsn
from ticker_service.db.pool import create_pool
from ticker_service.instruments import load_instruments
from ticker_service.marketdata.instruments.catalogue import InstrumentCatalogue, InstrumentFilter, UnknownAccount
from ticker_service.marketdata.instruments.expiry import Holidays
from ticker_service.marketdata.instruments.paper_list import RollingInstrumentBook
from ticker_service.marketdata.instruments.refresh import refresh_stale_dumps

__all__ = ["kite", "threaded_fakes"]  # fixtures

PAPER_BOOK = RollingInstrumentBook(load_instruments(), date(2026, 11, 29), Holidays())


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    made = await create_pool(asyncpg_dsn(database_url), 4)
    yield made
    await made.close()


def kite_broker(pool: asyncpg.Pool, kite: FakeKiteThread, token: str) -> KiteBroker:
    config = KiteAccount(api_key=kite.fake.api_key, api_secret=kite.fake.api_secret, access_token=token, root=kite.url)
    return KiteBroker(ACCOUNT, config, BrokerContext(pool, load_instruments(), make_settings()))


async def dump_requests(kite: FakeKiteThread) -> int:
    return await kite.do(lambda: len(kite.fake.requests_for("market.instruments.all")))


async def test_paper_accounts_answer_from_the_rolled_list(pool: asyncpg.Pool) -> None:
    catalogue = InstrumentCatalogue(pool, PAPER_BOOK, ["primary"], {})
    found = await catalogue.by_tokens("primary", [408065, 12602626, 999])
    assert {t: i.tradingsymbol for t, i in found.items()} == {408065: "INFY", 12602626: "NIFTY25NOVFUT"}
    by_symbol = await catalogue.by_symbols("primary", ["NSE:INFY", "NFO:NIFTY26DECFUT", "NSE:NOPE", "garbage"])
    assert sorted(by_symbol) == ["NFO:NIFTY26DECFUT", "NSE:INFY"]
    assert by_symbol["NFO:NIFTY26DECFUT"].expiry == date(2026, 12, 29)
    page = await catalogue.search("primary", InstrumentFilter(name="BANKNIFTY", instrument_type="PE"), 5, 2)
    assert len(page) == 5 and all(i.instrument_type == "PE" for i in page)
    everything = await catalogue.search("primary", InstrumentFilter(name="BANKNIFTY", instrument_type="PE"), 1000, 0)
    assert page == everything[2:7]
    with pytest.raises(UnknownAccount):
        await catalogue.by_tokens("nobody", [408065])


async def test_kite_dump_is_fetched_once_stored_and_served_by_another_catalogue(
    pool: asyncpg.Pool, database_url: str, kite: FakeKiteThread
) -> None:
    token = await kite.do(kite.fake.issue_access_token)
    broker = kite_broker(pool, kite, token)
    other_pool = await create_pool(asyncpg_dsn(database_url), 2)
    other_broker = kite_broker(other_pool, kite, token)
    try:
        first = InstrumentCatalogue(pool, PAPER_BOOK, [], {ACCOUNT: broker})
        second = InstrumentCatalogue(other_pool, PAPER_BOOK, [], {ACCOUNT: other_broker})
        found = await first.by_symbols(ACCOUNT, ["NSE:INFY", "MCX:GOLDPETAL25NOVFUT", "NSE:NIFTY26DECFUT"])
        assert sorted(found) == ["MCX:GOLDPETAL25NOVFUT", "NSE:INFY"]  # Kite's list, not the paper one
        assert found["NSE:INFY"].instrument_token == 408065
        assert found["MCX:GOLDPETAL25NOVFUT"].expiry == date(2025, 11, 28)
        assert await dump_requests(kite) == 1
        tokens = await second.by_tokens(ACCOUNT, [408065, 256265, 12345])
        assert {t: i.tradingsymbol for t, i in tokens.items()} == {408065: "INFY", 256265: "NIFTY 50"}
        indices = await second.search(ACCOUNT, InstrumentFilter(segment="indices"), 10, 0)
        assert [i.tradingsymbol for i in indices] == ["NIFTY 50", "NIFTY BANK"]
        # the job finds the dump fresh (fetched after the last 08:30 IST): nothing to fetch
        assert await refresh_stale_dumps(other_pool, {ACCOUNT: other_broker}) == 0
        assert await dump_requests(kite) == 1
        # a dump from before the last 08:30 IST is stale: the job fetches it again, once
        await pool.execute("UPDATE instrument_dumps SET fetched_at = fetched_at - interval '1 day'")
        assert await refresh_stale_dumps(pool, {ACCOUNT: broker}) == 1
        assert await refresh_stale_dumps(other_pool, {ACCOUNT: other_broker}) == 0
        assert await dump_requests(kite) == 2
    finally:
        await broker.close()
        await other_broker.close()
        await other_pool.close()
