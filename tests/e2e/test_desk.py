"""The trading desk (`/desk`) in headless Chromium against real service processes.

One database, two service processes on it (A serves the page; B stands in for "another instance"
while A is restarted), a paper account and a Kite account on the project's fake Kite, one browser.
Every assertion reads what the page shows; the service's API and database only confirm what was
(not) placed. Screenshots of every screen, at a desktop and a phone width, go to the test's temporary
directory (`desk-screens*` under pytest's basetemp); their paths are printed.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.conftest import TEMPLATE, _asyncpg_dsn, _with_database, eventually
from tests.e2e.desk_browser import Desk, browser, number, row_of
from tests.e2e.server import ServerProcess
from tests.fake_kite_thread import FakeKiteThread
from tests.kite_setup import ACCOUNT as KITE
from tests.kite_setup import KITE_ORDER, kite_account, kite_env
from tests.webhook_receiver import Receiver, receivers, start_receiver

__all__ = ["browser", "receivers"]  # fixtures

pytestmark = pytest.mark.slow

KEY = "desk-test-key-0123456789"
NIFTY = {"exchange": "NFO", "tradingsymbol": "NIFTY25NOVFUT", "product": "NRML"}


@dataclass
class Stack:
    a: ServerProcess  # the instance the page talks to
    b: ServerProcess  # another instance on the same database
    fake: FakeKiteThread
    token: str
    db: asyncpg.Connection
    shots: Path

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.b.url, headers={"X-API-Key": KEY}, timeout=30) as http:
            return await http.request(method, path, **kwargs)

    async def orders(self, account: str = "primary") -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = (await self.api("GET", "/orders", params={"account_id": account})).json()
        return answer


@pytest.fixture(scope="module")
async def desk_database(pg_admin_url: str, template_url: str) -> AsyncIterator[str]:
    """One database for the module's two service processes (the tests share them)."""
    name = f"desk_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_dsn(pg_admin_url))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    finally:
        await admin.close()
    yield _with_database(pg_admin_url, name)
    admin = await asyncpg.connect(_asyncpg_dsn(pg_admin_url))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def stack(desk_database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    logs = tmp_path_factory.mktemp("desk-logs")
    a = ServerProcess(desk_database, logs)
    # the fake's login sends the browser back to A's callback, as Kite would to the registered URL
    fake = await FakeKiteThread(redirect_url=f"{a.url}/accounts/{KITE}/callback").start()
    token = await fake.do(fake.fake.issue_access_token)
    env = {
        "TICKER_ACCOUNTS": json.dumps({"primary": {"funds": 2_000_000}, KITE: kite_account(fake, access_token=token)}),
        "TICKER_API_KEYS": json.dumps({KEY: ["*"]}),
        "TICKER_PAPER_TICK_INTERVAL": "0.25",
        "WEBHOOK_ALLOW_PRIVATE": "true",
        **kite_env(),
    }
    a.env.update(env)
    b = ServerProcess(desk_database, logs, **env)
    a.start()
    b.start()
    db = await asyncpg.connect(_asyncpg_dsn(desk_database))
    try:
        await asyncio.gather(a.wait_healthy(), b.wait_healthy())
        yield Stack(a, b, fake, token, db, tmp_path_factory.mktemp("desk-screens"))
    finally:
        a.stop()
        b.stop()
        await db.close()
        await fake.stop()


@pytest.fixture
async def desk(stack: Stack, browser: Browser) -> AsyncIterator[Desk]:
    """A new tab (empty sessionStorage) on A's desk, the key entered, the order stream live."""
    opened = await Desk.open(browser, stack.a.url, stack.shots)
    await opened.goto("blotter")
    await opened.enter_key(KEY)
    await opened.live()
    yield opened
    assert opened.errors == [], opened.errors
    assert opened.foreign() == [], "the desk asked another host"
    assert opened.keys_in_urls(KEY) == [], "the API key went into an HTTP URL"
    await opened.close()


async def fill_leg(desk: Desk, index: int, **fields: Any) -> None:
    leg = desk.page.locator(".leg").nth(index)
    for name, value in fields.items():
        target = leg.locator(f'[name="{name}"]')
        if await target.evaluate("el => el.tagName") == "SELECT":
            await target.select_option(str(value))
        else:
            await target.fill(str(value))


# ---- the API key, the page, the host rule --------------------------------------------------------


async def test_the_key_is_asked_for_once_and_kept_for_the_tab_only(stack: Stack, browser: Browser) -> None:
    tab = await Desk.open(browser, stack.a.url, stack.shots)
    try:
        await tab.page.goto(stack.a.url)  # / opens the desk
        assert tab.page.url.endswith("/desk")
        await tab.enter_key("not-the-key-0123456789")
        await expect(tab.page.locator("#key-why")).to_contain_text("did not accept")
        await tab.enter_key(KEY)
        await tab.live()
        stored = await tab.page.evaluate("[sessionStorage.getItem('ticker-desk.api-key'), localStorage.length]")
        assert stored == [KEY, 0]
        await tab.page.reload()  # the same tab: no question again
        await tab.live()
        await expect(tab.page.locator("#key-dialog")).to_be_hidden()
        # the WebSockets carry it as ?api_key= (a browser cannot set their headers); HTTP calls never do
        assert any("api_key=" in url for url in tab.sockets)
        assert tab.keys_in_urls(KEY) == []
        assert tab.foreign() == [] and tab.errors == []
    finally:
        await tab.close()
    fresh = await Desk.open(browser, stack.a.url, stack.shots)  # a new session: asked again
    try:
        await fresh.goto("blotter")
        await expect(fresh.page.locator("#key-dialog")).to_be_visible()
    finally:
        await fresh.close()


# ---- the ticket and the blotter ------------------------------------------------------------------


async def test_an_order_from_the_ticket_appears_and_fills_in_the_blotter_without_a_reload(
    stack: Stack, desk: Desk
) -> None:
    page = desk.page
    await page.evaluate("window.deskMarker = 'same page'")
    await desk.screen("ticket")
    await fill_leg(desk, 0, **NIFTY, quantity=50, order_type="LIMIT", price=18000, tag="desk-fill")
    await expect(page.locator(".leg .hint")).to_contain_text("lot 50")
    await desk.shot("ticket")
    await page.click("#submit-ticket")
    result = page.locator("#ticket-result .order-result")
    await expect(result).to_contain_text("Placed: order")
    order_id = await result.get_attribute("data-order-id")
    assert order_id

    await desk.screen("blotter")
    row = row_of(page, order_id)
    await expect(row).to_have_attribute("data-status", "OPEN")
    await expect(row).to_contain_text("0 / 50")
    # modify from the blotter to a price above the market: the paper exchange fills it
    await row.get_by_role("button", name="Modify").click()
    dialog = page.locator("#order-dialog")
    await expect(dialog).to_be_visible()
    await dialog.locator('#modify-order [name="price"]').fill("21000")
    await dialog.locator('#modify-order [name="price"]').press("Enter")
    await expect(row).to_have_attribute("data-status", "COMPLETE")
    await expect(row).to_contain_text("50 / 50")
    events = dialog.locator("table.events tbody")
    for event in ("order_placed", "task_status (modify_order)", "order_completed"):
        await expect(events).to_contain_text(event)
    trades = dialog.locator("table", has=page.locator("th", has_text="Charges")).locator("tbody tr")
    await expect(trades.first).to_be_visible()  # the fill, with what it was charged
    await desk.shot("order-detail")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    # and cancel from the blotter: a resting order placed elsewhere appears, and goes
    resting = await stack.api(
        "POST",
        "/orders/place",
        json={
            **NIFTY,
            "transaction_type": "BUY",
            "quantity": 50,
            "order_type": "LIMIT",
            "price": 18000,
            "tag": "desk-cancel",
        },
    )
    assert resting.status_code == 201, resting.text
    other = row_of(page, resting.json()["order_id"])
    await expect(other).to_have_attribute("data-status", "OPEN")
    cancel = other.get_by_role("button", name="Cancel order")
    await cancel.click()
    await expect(cancel).to_have_text("Confirm cancel")
    await cancel.click()
    await expect(other).to_have_attribute("data-status", "CANCELLED")
    await desk.shot("blotter")
    assert await page.evaluate("window.deskMarker") == "same page"  # never reloaded
    assert [o["status"] for o in await stack.orders() if o["order_id"] == order_id] == ["COMPLETE"]


async def test_a_bad_order_shows_the_fields_message_and_a_double_click_places_once(stack: Stack, desk: Desk) -> None:
    page = desk.page
    tasks_before = len((await stack.api("GET", "/tasks", params={"account_id": "primary", "limit": 1000})).json())
    orders_before = len(await stack.orders())
    await desk.screen("ticket")
    await fill_leg(desk, 0, **NIFTY, quantity=7, order_type="MARKET", tag="desk-dbl")
    await page.press('.leg [name="quantity"]', "Enter")  # the keyboard submits
    message = page.locator('#ticket .field-error[data-error-for="quantity"]')
    await expect(message).to_contain_text("not a multiple of the lot size 50")
    await expect(page.locator('.leg [name="quantity"]')).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#ticket-result")).to_contain_text("Nothing was placed")
    await desk.shot("ticket-invalid")
    assert len(await stack.orders()) == orders_before
    tasks = (await stack.api("GET", "/tasks", params={"account_id": "primary", "limit": 1000})).json()
    assert len(tasks) == tasks_before

    await fill_leg(desk, 0, quantity=50)
    await expect(message).to_be_hidden()  # editing the field took its message away
    earlier = len(desk.sent("POST", "/orders/place"))
    await page.dblclick("#submit-ticket")
    await expect(page.locator("#ticket-result .order-result")).to_contain_text("Placed: order")
    await eventually(lambda: desk.all_answered(desk.sent("POST", "/orders/place")))
    posts = desk.sent("POST", "/orders/place")[earlier:]
    keys = {r.headers.get("idempotency-key") for r in posts}
    assert len(posts) >= 1 and len(keys) == 1  # however many clicks went out, one key
    placed = [o for o in await stack.orders() if o.get("tag") == "desk-dbl"]
    assert len(placed) == 1, placed
    await desk.screen("blotter")
    await page.fill('#blotter-filters [name="tag"]', "desk-dbl")
    await expect(page.locator("#blotter tbody tr")).to_have_count(1)
    await expect(page.locator("#blotter-count")).to_have_text("1 order")


async def test_a_batch_with_a_failing_leg_shows_the_rollback(stack: Stack, desk: Desk) -> None:
    page = desk.page
    await desk.screen("ticket")
    await page.check('input[name="ticket-mode"][value="batch"]')
    await fill_leg(desk, 0, **NIFTY, quantity=50, order_type="LIMIT", price=18000, tag="desk-batch")
    await page.click("#add-leg")
    # 36 lots, more than the account's funds: the exchange rejects leg 1, so leg 0 is rolled back
    await fill_leg(desk, 1, **NIFTY, quantity=1800, order_type="MARKET", tag="desk-batch")
    await expect(page.locator('#batch-options [name="rollback_on_failure"]')).to_be_checked()
    await page.click("#submit-ticket")
    result = page.locator("#ticket-result .batch-result")
    await expect(result).to_have_attribute("data-status", "failed")
    await expect(result.locator('tr[data-leg="1"]')).to_contain_text("REJECTED")
    await expect(result.locator('tr[data-leg="1"]')).to_contain_text("Insufficient funds")
    await expect(result.locator('tr[data-leg="0"] td.rollback')).to_contain_text("cancelled")
    await expect(result.locator(".batch-error")).to_contain_text("Rolled back 1")
    await desk.shot("ticket-batch-rollback")
    leg0 = await result.locator('tr[data-leg="0"]').get_attribute("data-order-id")
    assert leg0
    await desk.screen("blotter")
    await expect(row_of(page, leg0)).to_have_attribute("data-status", "CANCELLED")


# ---- market data -----------------------------------------------------------------------------------


async def test_ticks_move_the_market_watch_and_the_positions(stack: Stack, desk: Desk) -> None:
    page = desk.page
    placed = await stack.api(
        "POST",
        "/orders/place",
        json={**NIFTY, "transaction_type": "BUY", "quantity": 50, "order_type": "MARKET", "tag": "desk-position"},
    )
    assert placed.status_code == 201, placed.text
    await desk.screen("watch")
    await page.fill('#watch-add [name="instrument"]', "NSE:NOPE")
    await page.press('#watch-add [name="instrument"]', "Enter")
    await expect(page.locator('#watch-add .field-error[data-error-for="instruments"]')).to_contain_text("unknown")
    await page.fill('#watch-add [name="instrument"]', "NSE:INFY")
    await page.press('#watch-add [name="instrument"]', "Enter")
    ltp = page.locator('#watch tr[data-symbol="NSE:INFY"] td.ltp')
    await expect(ltp).to_have_attribute("data-ticks", "yes")
    seen = {await ltp.text_content()}
    for _ in range(2):  # the price moves, tick after tick, with no reload
        await eventually(lambda: ltp.text_content(), timeout=20)
        await expect(ltp).not_to_have_text(seen.pop() or "")
        seen.add(await ltp.text_content())
    assert number(seen.pop() or "") > 0
    await desk.shot("market-watch")

    await desk.screen("positions")
    nifty = page.locator('#positions tbody tr[data-token="12602626"]')
    await expect(nifty).to_be_visible()
    first = await nifty.locator("td.ltp").text_content()
    await expect(nifty.locator("td.ltp")).not_to_have_text(first or "")  # live, from the tick socket
    await expect(nifty.locator("td.pnl")).to_have_text(re.compile(r"^[+-]?[\d,]+\.\d\d$"))
    await expect(nifty.locator("td.pnl-net")).to_have_text(re.compile(r"^[+-]?[\d,]+\.\d\d$"))  # after charges
    await expect(page.locator('#margins .margin[data-segment="equity"]')).to_contain_text("Available")
    await expect(page.locator("#holdings")).not_to_be_empty()
    await desk.shot("positions")

    await desk.screen("watch")
    remove = page.locator('#watch tr[data-symbol="NSE:INFY"]').get_by_role("button", name="Unsubscribe NSE:INFY")
    await remove.click()
    await remove.click()  # the second click confirms
    await expect(page.locator('#watch tr[data-symbol="NSE:INFY"]')).to_have_count(0)
    stored = (await stack.api("GET", "/subscriptions", params={"account_id": "primary"})).json()
    assert stored["subscriptions"] == []


# ---- webhooks -------------------------------------------------------------------------------------


async def test_webhooks_create_ping_deliveries_replay_and_delete(
    stack: Stack, desk: Desk, receivers: list[Receiver]
) -> None:
    page = desk.page
    receiver = await start_receiver(receivers)
    await desk.screen("webhooks")
    await page.fill('#webhook-create [name="url"]', "ftp://nowhere")
    await page.click('#webhook-create button[type="submit"]')
    await expect(page.locator('#webhook-create .field-error[data-error-for="url"]')).to_be_visible()
    await page.fill('#webhook-create [name="url"]', receiver.url)
    await page.fill('#webhook-create [name="secret"]', "desk-secret-<b>not markup</b>")
    await page.click('#webhook-create button[type="submit"]')
    await expect(page.locator("#webhook-created code.secret")).to_have_text("desk-secret-<b>not markup</b>")
    card = page.locator("article.webhook")
    await expect(card).to_have_count(1)
    await card.get_by_role("button", name="Send test").click()
    await eventually(lambda: len(receiver.received) == 1)
    await card.get_by_role("button", name="Deliveries").click()
    delivery = card.locator("table.deliveries tbody tr").first
    await expect(delivery).to_have_attribute("data-status", "delivered")
    await expect(delivery).to_contain_text("ping")
    await delivery.get_by_role("button", name="Replay").click()
    await eventually(lambda: len(receiver.received) == 2)
    assert receiver.received[0]["headers"]["webhook-id"] == receiver.received[1]["headers"]["webhook-id"]
    await expect(card.locator("table.deliveries tbody tr").first).to_have_attribute("data-status", "delivered")
    await desk.shot("webhooks")
    delete = card.get_by_role("button", name="Delete webhook")
    await delete.click()
    await delete.click()
    await expect(page.locator("article.webhook")).to_have_count(0)
    assert (await stack.api("GET", "/advanced/webhooks", params={"account_id": "primary"})).json() == []


# ---- health and the Kite login ----------------------------------------------------------------------


async def test_an_expired_token_shows_on_the_health_panel_and_the_login_button_renews_it(
    stack: Stack, desk: Desk
) -> None:
    page = desk.page
    await stack.fake.do(stack.fake.fake.expire_token, stack.token)
    refused = await stack.api("POST", "/orders/place?wait=0", json=KITE_ORDER | {"expires_in": 120})
    assert refused.status_code in (201, 202), refused.text  # accepted; it waits for a token
    await desk.screen("health")
    kite = page.locator(f'article.account[data-account="{KITE}"]')
    await expect(kite).to_have_attribute("data-state", "token_expired")
    await expect(kite.locator(".badge.state")).to_have_text("token expired")
    await expect(page.locator("#health .problems")).to_contain_text("token expired")
    await expect(page.locator('article.account[data-account="primary"]')).to_have_attribute("data-state", "active")
    await desk.shot("health-token-expired")

    await kite.get_by_role("button", name="Log in to Kite").click()  # the service, the fake Kite, the callback
    await expect(page.locator("h1")).to_have_text("Logged in")
    await page.get_by_role("link", name="Back to the desk").click()
    await desk.live()  # the same tab: the key is still there
    await expect(page.locator(f'article.account[data-account="{KITE}"]')).to_have_attribute("data-state", "active")
    await desk.shot("health")
    task_id = refused.json()["task_id"]
    await eventually(
        lambda: stack.db.fetchval("SELECT status = 'completed' FROM order_tasks WHERE task_id = $1", task_id)
    )


# ---- a restart while the page is open --------------------------------------------------------------


async def test_the_blotter_catches_up_with_since_after_a_restart_and_misses_no_event(stack: Stack, desk: Desk) -> None:
    page = desk.page
    state = page.locator("#stream-state")
    stack.a.kill()  # kill -9 of the instance the page is connected to
    await expect(state).to_have_attribute("data-state", "behind")
    await expect(page.locator("#banner")).to_contain_text("Behind")
    placed = []
    for i in range(3):  # meanwhile, on another instance: events the page cannot see yet
        r = await stack.api(
            "POST",
            "/orders/place",
            json={
                **NIFTY,
                "transaction_type": "SELL",
                "quantity": 50,
                "order_type": "MARKET",
                "tag": f"desk-restart-{i}",
            },
        )
        assert r.status_code == 201, r.text
        placed.append(r.json()["order_id"])
    await desk.shot("blotter-behind")
    stack.a.start()
    await stack.a.wait_healthy()
    await expect(state).to_have_attribute("data-state", "live", timeout=30_000)

    async def caught_up() -> bool:
        last = await stack.db.fetchval("SELECT max(seq) FROM outbox_events WHERE account_id = 'primary'")
        return str(last) == await state.get_attribute("data-last-seq")

    await eventually(caught_up, timeout=20)
    # every seq from 1 on was applied exactly once, in order: the count is the last seq, no repair
    assert await state.get_attribute("data-events") == await state.get_attribute("data-last-seq")
    assert await state.get_attribute("data-repairs") == "0"
    for order_id in placed:
        await expect(row_of(page, order_id)).to_have_attribute("data-status", "COMPLETE")
    await expect(page.locator("#banner")).to_contain_text("Caught up")
    await row_of(page, placed[0]).locator("button.link").click()
    events = page.locator("#order-dialog table.events tbody")
    await expect(events).to_contain_text("order_placed")
    await expect(events).to_contain_text("order_completed")
