"""`serve` without API keys refuses, before anything starts, to listen beyond loopback or to load an
account at a live broker, unless TICKER_ALLOW_OPEN=true says the service is meant to be open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HOST": "0.0.0.0"}, "HOST: 0.0.0.0"),
        ({"TICKER_ACCOUNTS": '{"zerodha": {"broker": "kite", "api_key": "k1"}}'}, "zerodha"),
    ],
)
def test_serve_refuses_to_start_open(env: dict[str, str], named: str, tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TICKER_") and k not in {"DATABASE_URL", "HOST"}}
    base.update(TICKER_DATA_DIR=str(tmp_path), PORT="0", **env)
    done = subprocess.run(
        [sys.executable, "-m", "ticker_service", "serve"], env=base, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "refusing to start open" in lines[0] and named in lines[0] and "TICKER_ALLOW_OPEN=true" in lines[0]
    assert not (tmp_path / "pg").exists()  # refused before the database started
