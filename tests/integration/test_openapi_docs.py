"""The API docs work offline: Swagger UI and Redoc load their scripts and styles from this service."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from litestar.testing import AsyncTestClient

CHROMIUM = Path("/usr/bin/chromium")


class Assets(HTMLParser):
    """Every script src and link href of a page, by kind."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.other_links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "script" and values.get("src"):
            self.scripts.append(values["src"])
        elif tag == "link" and values.get("href"):
            rels = values.get("rel", "").lower().split()
            (self.stylesheets if "stylesheet" in rels else self.other_links).append(values["href"])


def local(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and url.startswith("/")


async def page_assets(client: AsyncTestClient[Any], path: str) -> Assets:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    parser = Assets()
    parser.feed(r.text)
    everything = parser.scripts + parser.stylesheets + parser.other_links
    assert everything, f"{path} loads nothing?"
    external = [u for u in everything if not local(u)]
    assert external == [], f"{path} loads from another host: {external}"
    assert "googleapis" not in r.text and "cdn." not in r.text
    return parser


async def fetch(client: AsyncTestClient[Any], url: str, kinds: tuple[str, ...]) -> bytes:
    r = await client.get(url)
    assert r.status_code == 200, f"{url}: {r.status_code}"
    assert r.headers["content-type"].split(";")[0].strip() in kinds, f"{url}: {r.headers['content-type']}"
    assert len(r.content) > 10_000, f"{url}: only {len(r.content)} bytes"
    return r.content


JS = ("text/javascript", "application/javascript")


async def test_swagger_and_redoc_load_their_assets_from_this_service(client: AsyncTestClient[Any]) -> None:
    swagger = await page_assets(client, "/schema/swagger")
    assert len(swagger.scripts) == 2 and len(swagger.stylesheets) == 1  # the bundle, the preset, the css
    for src in swagger.scripts:
        body = await fetch(client, src, JS)
        assert b"Swagger" in body or b"swagger" in body
    for href in swagger.stylesheets:
        assert b".swagger-ui" in await fetch(client, href, ("text/css",))

    for path in ("/schema/redoc", "/schema"):  # Redoc is also the docs' root
        redoc = await page_assets(client, path)
        assert len(redoc.scripts) == 1 and redoc.stylesheets == []
        assert b"Redoc" in await fetch(client, redoc.scripts[0], JS)

    for href in swagger.other_links:  # the favicon
        r = await client.get(href)
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/")

    schema = await client.get("/schema/openapi.json")
    assert schema.status_code == 200 and "/orders/place" in schema.json()["paths"]
    # the assets' package is located, never imported: it would import Django
    assert "django" not in sys.modules and "drf_spectacular_sidecar" not in sys.modules


def test_swagger_renders_in_a_browser_without_the_internet(tmp_path: Path) -> None:
    """Render the page with everything but loopback unreachable; Swagger UI's DOM must have been built."""
    assert CHROMIUM.exists(), (
        "Debian's chromium is needed: `./run test` installs it (as root), or apt-get install chromium"
    )
    import asyncio
    import threading

    import uvicorn

    from tests.conftest import make_settings
    from tests.e2e.server import free_port
    from ticker_service.app import create_app

    port = free_port()
    app = create_app(make_settings(), database_url="postgresql+asyncpg://unused@127.0.0.1:1/none", migrate=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.05)
        dom = subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path}",
                "--proxy-server=http://127.0.0.1:9",  # no internet: every host but loopback goes to a dead proxy
                "--virtual-time-budget=10000",
                "--dump-dom",
                f"http://127.0.0.1:{port}/schema/swagger",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    finally:
        server.should_exit = True
        thread.join(10)
    # built by Swagger UI's script (the page itself only holds the spec): one block per operation
    assert 'class="swagger-ui' in dom and "opblock" in dom, dom[-2000:]
    assert 'data-path="/orders/place"' in dom
