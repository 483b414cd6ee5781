"""`OPTIONS` answers every method of its path in `Allow`, not only the first one registered.

Litestar makes a path's OPTIONS handler together with the path's first route handler; its answer
reads the methods of the route object that existed then. A controller with two handlers on one path
(GET and POST of `/advanced/batch-orders`) gets a second route object for the path, with the old
OPTIONS handler, so `Allow` said `GET, OPTIONS` for a path that also takes POST (schemathesis'
`allow_header_conformance` found it). Once the app is built, the route each OPTIONS handler reads is
given the methods of the path's final route. Build-time only.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute

_OPTIONS_HANDLER = "options_handler"  # the name of the function Litestar makes for it (routes/http.py)


def allow_every_method(app: Litestar) -> None:
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            fn = getattr(handler.fn, "__wrapped__", handler.fn)
            cells = getattr(fn, "__closure__", None) or ()
            if getattr(fn, "__name__", "") != _OPTIONS_HANDLER:
                continue
            for cell in cells:
                read = cell.cell_contents
                if isinstance(read, HTTPRoute) and read is not route:
                    read.methods = set(route.methods)
