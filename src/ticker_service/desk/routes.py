"""Routes of the desk: `/` and `/desk` (the page) and `/desk/assets/{asset}` (its scripts and styles).

The page and its assets are public, like the API docs: they hold no data, and every data call the
page makes carries the user's API key. Each answer carries a Content-Security-Policy that allows
this origin only (scripts, styles, fetches and WebSockets), so even a bug in the page cannot make the
browser talk to another host or run an inline script that user input smuggled in.

The assets are a fixed set of files in the package (`static/`), found by name in that set: a path
from the request never reaches the filesystem.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from litestar import Request, Response, Router, get
from litestar.params import FromPath
from litestar.response import Redirect

from ticker_service.system.access import Access
from ticker_service.system.errors import ApiError

DESK_PATH = "/desk"
ASSETS_PATH = f"{DESK_PATH}/assets"
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# 'self' covers ws:// and wss:// of this origin in CSP level 3 (every current browser)
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # revalidate every time: the ETag makes that a 304, and a new release is picked up at once
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """Every file of `static/` by name, read once (they are part of the installed package)."""
    found: dict[str, Asset] = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if not entry.is_file() or suffix not in _MEDIA_TYPES:
            continue
        body = entry.read_bytes()
        found[entry.name] = Asset(body, _MEDIA_TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    if "index.html" not in found:
        raise RuntimeError("the desk's files are missing from the package (ticker_service/desk/static)")
    return found


def _serve(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    asset = assets().get(name)
    if asset is None:
        raise ApiError(404, f"asset: no desk asset {name[:100]!r}")
    headers = {**SECURITY_HEADERS, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(b"", status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@get("/", opt=Access.public(), include_in_schema=False, sync_to_thread=False)
def root() -> Redirect:
    """The service's root opens the desk."""
    return Redirect(path=DESK_PATH, status_code=302)


@get(DESK_PATH, opt=Access.public(), include_in_schema=False, sync_to_thread=False)
def desk_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    return _serve(request, "index.html")


@get(f"{ASSETS_PATH}/{{asset:str}}", opt=Access.public(), include_in_schema=False, sync_to_thread=False)
def desk_asset(request: Request[Any, Any, Any], asset: FromPath[str]) -> Response[bytes]:
    return _serve(request, asset)


def desk_router() -> Router:
    return Router(path="/", route_handlers=[root, desk_page, desk_asset], tags=["desk"])
