"""The README's webhook example works as written: its registration body, posted to a service configured
as the README says, is accepted; and its receiver really receives."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import asyncpg

from tests.conftest import eventually, make_client
from tests.e2e.server import free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def webhook_section() -> str:
    text = README.read_text()
    start = text.index("### Webhooks")
    return text[start : text.index("\n### ", start + 1)]


def example_body() -> dict[str, Any]:
    found = re.search(r"curl -s -X POST localhost:8080/advanced/webhooks .*?-d '(\{.*?\})'", webhook_section(), re.S)
    assert found, "the README's webhook registration example is gone"
    body: dict[str, Any] = json.loads(found.group(1))
    return body


def example_env() -> dict[str, str]:
    """The variables the README sets on `./run serve` for the example."""
    found = re.search(r"^((?:[A-Z_]+=\S+ )+)\./run serve", webhook_section(), re.M)
    return dict(pair.split("=", 1) for pair in found.group(1).split()) if found else {}


async def listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


def example_receiver() -> str:
    found = re.search(r"^python3 -c '(.*?)'$", webhook_section(), re.S | re.M)
    assert found, "the README's example receiver is gone"
    return found.group(1)


async def test_the_readme_webhook_example_registers_and_delivers(database_url: str, db: asyncpg.Connection) -> None:
    body = example_body()
    env = example_env()
    async with make_client(database_url, **env) as c:
        r = await c.post("/advanced/webhooks", json=body)
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["url"] == body["url"] and created["events"] == body["events"]
        assert created["secret"] == body["secret"]

        # the README's receiver, on a free port instead of its 9000, gets a delivery from the service
        port = free_port()
        receiver = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            example_receiver().replace("9000", str(port)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            url = body["url"].replace(":9000", f":{port}")
            assert url != body["url"]
            r = await c.post("/advanced/webhooks", json=body | {"url": url})
            assert r.status_code == 201, r.text
            hook = r.json()["webhook_id"]
            await eventually(lambda: listening(port))
            assert (await c.post(f"/advanced/webhooks/{hook}/test")).status_code == 202
            await eventually(
                lambda: db.fetchval(
                    "SELECT count(*) > 0 FROM webhook_deliveries WHERE status = 'delivered' AND webhook_id = $1", hook
                )
            )
        finally:
            receiver.terminate()
            out, _ = await receiver.communicate()
        printed = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
        assert any(p["event"] == "ping" and p["data"]["webhook_id"] == hook for p in printed), out
