"""The API docs: the OpenAPI document, Redoc and Swagger UI, with every asset served by this service.

Litestar's render plugins load their scripts and styles from CDNs by default, which leaves the
pages blank on a machine without internet. The assets come instead from the `drf-spectacular-sidecar`
package, which ships swagger-ui-dist and Redoc's standalone bundle as plain static files (updated
with each upstream release). Its directory is located, never imported: its `__init__` imports
Django, which this service neither needs nor loads.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, RedocRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.static_files import create_static_files_router

SCHEMA_PATH = "/schema"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"
_ASSETS_PACKAGE = "drf_spectacular_sidecar"


def assets_directory() -> Path:
    """The static files of the assets package (`swagger-ui-dist/`, `redoc/bundles/`)."""
    spec = importlib.util.find_spec(_ASSETS_PACKAGE)  # a top-level package: found without running it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the API docs' assets are missing: install the {_ASSETS_PACKAGE} package")
    directory = Path(next(iter(spec.submodule_search_locations))) / "static" / _ASSETS_PACKAGE
    if not (directory / "swagger-ui-dist" / "swagger-ui-bundle.js").is_file():
        raise RuntimeError(f"the API docs' assets are not where expected in {directory}")
    return directory


def assets_router() -> Router:
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[assets_directory()],
        name="docs-assets",
        cache_control=CacheControlHeader(max_age=3600, public=True),
        include_in_schema=False,
    )


def openapi_config(title: str, version: str) -> OpenAPIConfig:
    """`/schema` (Redoc), `/schema/redoc`, `/schema/swagger`, `/schema/openapi.json` and `.yaml`."""
    swagger = f"{ASSETS_PATH}/swagger-ui-dist"
    favicon = f"<link rel='icon' type='image/png' href='{swagger}/favicon-32x32.png'>"
    return OpenAPIConfig(
        title=title,
        version=version,
        path=SCHEMA_PATH,
        render_plugins=[
            # the first plugin is also served at the root, /schema, as Litestar's default was Redoc
            RedocRenderPlugin(
                js_url=f"{ASSETS_PATH}/redoc/bundles/redoc.standalone.js", google_fonts=False, favicon=favicon
            ),
            SwaggerRenderPlugin(
                js_url=f"{swagger}/swagger-ui-bundle.js",
                css_url=f"{swagger}/swagger-ui.css",
                standalone_preset_js_url=f"{swagger}/swagger-ui-standalone-preset.js",
                favicon=favicon,
            ),
            JsonRenderPlugin(),
            YamlRenderPlugin(),
        ],
    )
