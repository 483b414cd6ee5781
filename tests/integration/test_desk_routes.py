"""The desk's page and assets as HTTP answers: local files only, a policy that forbids other hosts,
no markup built from strings, and every file of the package served (the browser tests are in e2e/)."""

from __future__ import annotations

import re
import tomllib
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from ticker_service.desk.routes import assets

STATIC = resources.files("ticker_service.desk").joinpath("static")
IMPORT = re.compile(r"""^import .* from '\./([\w.-]+)';$""", re.MULTILINE)


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self.inline_styles = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name) and not str(values[name]).startswith("#"):
                self.urls.append(str(values[name]))
        self._in_script = tag == "script"
        self.inline_styles += tag == "style" or "style" in values

    def handle_data(self, data: str) -> None:
        self.inline_scripts += self._in_script and bool(data.strip())

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


async def test_the_root_opens_the_desk_and_the_page_loads_only_local_assets(client: AsyncTestClient[Any]) -> None:
    root = await client.get("/", follow_redirects=False)
    assert root.status_code == 302 and root.headers["location"] == "/desk"
    page = await client.get("/desk")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert not re.search(r"https?:|\*|'unsafe-", policy), policy  # this origin only, no inline code
    assert page.headers["x-content-type-options"] == "nosniff"
    links = Links()
    links.feed(page.text)
    assert links.inline_scripts == 0 and links.inline_styles == 0  # the policy would refuse them anyway
    assert links.urls and all(url.startswith("/desk/assets/") for url in links.urls), links.urls
    for url in links.urls:
        assert (await client.get(url)).status_code == 200, url


async def test_every_module_the_scripts_import_is_served(client: AsyncTestClient[Any]) -> None:
    wanted = ["app.js"]
    seen: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in seen:
            continue
        seen.add(name)
        r = await client.get(f"/desk/assets/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"].startswith("text/javascript")
        wanted += IMPORT.findall(r.text)
    scripts = {entry.name for entry in STATIC.iterdir() if entry.name.endswith(".js")}
    assert seen == scripts, f"modules no page imports: {scripts - seen}"


def test_no_script_builds_markup_from_strings_or_names_another_host() -> None:
    """Symbols, tags and messages are user input: text nodes only, never HTML parsed from strings."""
    for entry in STATIC.iterdir():
        if not entry.name.endswith((".js", ".css", ".html")):
            continue
        text = entry.read_text()
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert banned not in text, f"{entry.name} uses {banned}"
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text.replace("http://www.w3.org/2000/svg", "")), (
            f"{entry.name} names another host"
        )


async def test_assets_by_name_only_with_etags(client: AsyncTestClient[Any]) -> None:
    for missing in ("nope.js", "..%2Froutes.py", "%2E%2E%2F__init__.py"):
        r = await client.get(f"/desk/assets/{missing}")
        assert r.status_code == 404, missing
    first = await client.get("/desk/assets/desk.css")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/css")
    again = await client.get("/desk/assets/desk.css", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_the_package_ships_every_file_of_the_desk() -> None:
    """What `assets()` serves is the whole static folder, and pyproject.toml puts that folder in the wheel."""
    on_disk = {entry.name for entry in STATIC.iterdir() if entry.is_file()}
    assert set(assets()) == on_disk
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "desk/static/*" in pyproject["tool"]["setuptools"]["package-data"]["ticker_service"]
