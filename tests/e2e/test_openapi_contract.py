"""The OpenAPI document is the contract: schemathesis sends generated requests, valid and invalid, to
every operation of a real server process (paper account, API keys on) and checks every answer against
the document: no 5xx, a documented status, a documented content type and headers, a body of the
declared schema, invalid data refused and valid data accepted (with the exceptions, and why, in
`schemathesis.toml`), `Allow` naming every method. The document holds no WebSocket route (they are not
HTTP operations), which the test asserts.

Bounded so that it takes a minute or two: a fixed number of examples per operation, one worker, a
fixed seed (a CI run is the same run every time; change the seed by hand to explore further).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from litestar.routes import WebSocketRoute

from tests.conftest import make_settings
from tests.e2e.server import ServerProcess
from ticker_service.app import create_app

pytestmark = pytest.mark.slow

API_KEY = "schemathesis-key-0123456789"
SEED = "20261207"
MAX_EXAMPLES = "40"  # per operation and phase: the 41 operations in about a minute here (50: 81 s)
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# every check on, and the one exception per operation with its reason (see the file)
CONFIG = Path(__file__).with_name("schemathesis.toml")


async def test_every_operation_answers_as_the_openapi_document_says(database_url: str, tmp_path: Path) -> None:
    app = create_app(make_settings(), database_url="postgresql+asyncpg://unused@127.0.0.1:1/none", migrate=False)
    sockets = {route.path_format for route in app.routes if isinstance(route, WebSocketRoute)}
    assert sockets and not sockets & set(app.openapi_schema.paths or {}), "a WebSocket route is no HTTP operation"
    server = ServerProcess(database_url, tmp_path, TICKER_API_KEYS=json.dumps({API_KEY: ["primary"]}))
    try:
        server.start()
        await server.wait_healthy()
        started = time.monotonic()
        run = subprocess.run(  # the server is another process: nothing here to keep serving
            [
                str(SCHEMATHESIS),
                "--config-file",
                str(CONFIG),
                "run",
                f"{server.url}/schema/openapi.json",
                "--max-examples",
                MAX_EXAMPLES,
                "--seed",
                SEED,
                "--workers",
                "1",
                "--header",
                f"X-API-Key: {API_KEY}",
                "--request-timeout",
                "20",
                "--no-color",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path / "schemathesis-report"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    output = run.stdout[-20_000:] + run.stderr[-5_000:]
    assert run.returncode == 0, f"schemathesis found answers that break the document:\n{output}"
    assert "operations" in run.stdout.lower() or "api operations" in output.lower(), output
    print(f"schemathesis took {elapsed:.0f} s")
