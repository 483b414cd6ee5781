"""The official `kiteconnect` client, which is synchronous, run in a bounded thread pool per account.

One pool per account (so one account's slow calls cannot starve another's), and one HTTP
connection pool sized to it (so a thread never waits for a connection nor opens one per call).
A client is made per access token: tokens change daily and a call holds its own.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import requests
from kiteconnect import KiteConnect

T = TypeVar("T")


class KiteCalls:
    def __init__(self, account_id: str, api_key: str, root: str, *, threads: int, timeout: float) -> None:
        self.api_key = api_key
        self.root = root
        self.threads = threads
        self.timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"kite-{account_id}")
        self._token: str | None = None
        self._client: KiteConnect | None = None

    def client(self, access_token: str | None) -> KiteConnect:
        if self._client is None or access_token != self._token:
            client = KiteConnect(self.api_key, access_token=access_token, root=self.root, timeout=self.timeout)
            # kiteconnect mounts its pool only for https; mount ours for both (tests use plain http), and
            # never let urllib3 resend a request on its own: a resent order could be placed twice
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=self.threads, max_retries=0)
            client.reqsession.mount("https://", adapter)
            client.reqsession.mount("http://", adapter)
            self._client, self._token = client, access_token
        return self._client

    async def run(self, access_token: str | None, call: Callable[[KiteConnect], T]) -> T:
        """Run `call(client)` on a thread of this account's pool."""
        client = self.client(access_token)
        context = contextvars.copy_context()  # log lines from the thread keep the request's bindings
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, context.run, call, client)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def kite_kwargs(**values: Any) -> dict[str, Any]:
    """Keyword arguments for kiteconnect without the unset ones (it sends every key it gets)."""
    return {k: v for k, v in values.items() if v is not None}
