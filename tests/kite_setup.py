"""A service with a Kite account pointed at the project's fake Kite, for the Kite tests.

The fake answers on the test's event loop; the service under `make_client` runs on the test client's
own loop and calls Kite from its thread pool, so the two never block each other.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet
from litestar.testing import AsyncTestClient

from tests.conftest import make_client
from tests.fake_kite_thread import FakeKiteThread

ACCOUNT = "zerodha"
USER_ID = "AB1234"
SECRET_KEY = Fernet.generate_key().decode()
SERVICE_KEY = "service-api-key-0123456789"


def kite_account(fake: FakeKiteThread, **extra: Any) -> dict[str, Any]:
    return {
        "broker": "kite",
        "api_key": fake.fake.api_key,
        "api_secret": fake.fake.api_secret,
        "user_id": USER_ID,
        "root": fake.url,
        "ticker_root": fake.ticker_url,
        "login_url": f"{fake.url}/connect/login",
        **extra,
    }


def kite_env(**env: str) -> dict[str, str]:
    return {"TICKER_SECRET_KEY": SECRET_KEY, "TICKER_FEED_SILENCE_SECONDS": "2", **env}


def kite_client(
    database_url: str, fake: FakeKiteThread, *, token: str | None = None, **env: str
) -> AsyncTestClient[Any]:
    """A service with one Kite account (`zerodha`) and a paper one (`primary`)."""
    extra = {"access_token": token} if token else {}
    accounts = {ACCOUNT: kite_account(fake, **extra), "primary": {}}
    return make_client(database_url, accounts, **kite_env(**env))


KITE_ORDER = {
    "account_id": ACCOUNT,
    "exchange": "NSE",
    "tradingsymbol": "INFY",
    "transaction_type": "BUY",
    "quantity": 1,
    "product": "CNC",
    "order_type": "MARKET",
}
