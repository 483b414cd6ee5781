"""The desk's tests drive Debian's chromium with Playwright for Python: one browser, one page per test.

Playwright's pip package carries its own driver (a Node program inside the wheel) and talks to the
browser over the DevTools protocol; `executable_path` points it at the system's chromium, so nothing
is downloaded. `./run test` installs chromium (as root) when it is missing, as for the API docs' test.
Every host but loopback goes to a dead proxy, and each page records every URL it asked for, so a
test can show that the desk never talks to another host.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Request, async_playwright, expect

CHROMIUM = Path("/usr/bin/chromium")
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), (
        "Debian's chromium is needed: `./run test` installs it (as root), or apt-get install chromium"
    )
    playwright = await async_playwright().start()
    launched = await playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=[
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            # no internet: every host but loopback goes to a dead proxy (chromium never proxies loopback
            # unless told to; Playwright's own `proxy` option does tell it to, hence the plain flag)
            "--proxy-server=http://127.0.0.1:9",
        ],
    )
    try:
        yield launched
    finally:
        await launched.close()
        await playwright.stop()


class Desk:
    """One browser tab on the desk of one service, with what it requested and its screenshots."""

    def __init__(self, context: BrowserContext, page: Page, base_url: str, shots: Path) -> None:
        self.context = context
        self.page = page
        self.base_url = base_url
        self.shots = shots
        self.requests: list[Request] = []
        self.finished: list[Request] = []
        self.sockets: list[str] = []
        self.errors: list[str] = []
        # handlers must be Python functions (Playwright tags them), not bound built-ins like list.append
        page.on("request", lambda request: self.requests.append(request))
        page.on("requestfinished", lambda request: self.finished.append(request))
        page.on("requestfailed", lambda request: self.finished.append(request))
        page.on("websocket", lambda ws: self.sockets.append(ws.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    @classmethod
    async def open(cls, browser: Browser, base_url: str, shots: Path) -> Desk:
        context = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
        return cls(context, await context.new_page(), base_url, shots)

    async def close(self) -> None:
        await self.context.close()

    async def goto(self, screen: str) -> None:
        await self.page.goto(f"{self.base_url}/desk#{screen}")

    async def enter_key(self, key: str) -> None:
        dialog = self.page.locator("#key-dialog")
        await expect(dialog).to_be_visible()
        await self.page.fill("#key-input", key)
        await self.page.press("#key-input", "Enter")

    async def live(self) -> None:
        await expect(self.page.locator("#stream-state")).to_have_attribute("data-state", "live")

    async def screen(self, name: str) -> None:
        await self.page.click(f'nav.tabs a[data-tab="{name}"]')
        await expect(self.page.locator(f'[data-view="{name}"]')).to_be_visible()

    async def shot(self, name: str) -> list[Path]:
        """The page as it is, at a desktop width and at a phone's."""
        paths = []
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            await self.page.set_viewport_size(size)  # type: ignore[arg-type]
            path = self.shots / f"{name}-{label}.png"
            await self.page.screenshot(path=str(path), full_page=True)
            print(f"screenshot: {path}")
            paths.append(path)
        await self.page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
        return paths

    def foreign(self) -> list[str]:
        """Requests to any host but the service's own, but for the broker's login: a page the user
        leaves the desk for on purpose (the service's /login redirects there)."""
        own = urlsplit(self.base_url).netloc
        urls = [r.url for r in self.requests if not self._login_redirect(r)] + self.sockets
        return [u for u in urls if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != own]

    def _login_redirect(self, request: Request) -> bool:
        first = request
        while first.redirected_from is not None:
            first = first.redirected_from
        started = urlsplit(first.url)
        return request.is_navigation_request() and started.path.endswith("/login") and first is not request

    def keys_in_urls(self, key: str) -> list[str]:
        """HTTP requests whose URL carries the key (only WebSockets and the login may)."""
        return [r.url for r in self.requests if key in r.url and "/login" not in urlsplit(r.url).path]

    def sent(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and urlsplit(r.url).path == path]

    def all_answered(self, requests: list[Request]) -> bool:
        return all(r in self.finished for r in requests)


def row_of(page: Page, order_id: str) -> Any:
    return page.locator(f'#blotter tbody tr[data-order-id="{order_id}"]')


def number(text: str) -> float:
    return float(re.sub(r"[^0-9.\-]", "", text))
