"""The project's fake Kite as a benchmark's broker: its process, and a service account on it."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from typing import Any

from cryptography.fernet import Fernet

from harness.procs import free_port, spawn
from harness.session import Session

API_KEY, API_SECRET, ACCESS_TOKEN = "benchkey", "benchsecret", "benchaccesstoken0001"


def start_fake(s: Session, *options: str) -> tuple[Any, str]:
    """`python -m ticker_service.fakekite` with these extra options, once it answers; (process, URL)."""
    port = free_port()
    out = s.workdir / "fakekite.log"
    command = [sys.executable, "-m", "ticker_service.fakekite", "--port", str(port)]
    command += ["--api-key", API_KEY, "--api-secret", API_SECRET, "--access-token", ACCESS_TOKEN, *options]
    proc = spawn(command, out=out)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"{url}/_fake/switches", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the fake Kite did not start; see {out}")


def kite_service_env(fake: str, account_id: str) -> dict[str, str]:
    """A service's environment with one Kite account on the fake (REST, ticker and login)."""
    account = {
        "broker": "kite",
        "api_key": API_KEY,
        "api_secret": API_SECRET,
        "access_token": ACCESS_TOKEN,
        "root": fake,
        "ticker_root": fake.replace("http", "ws") + "/ws",
        "login_url": f"{fake}/connect/login",
    }
    return {
        "TICKER_ACCOUNTS": json.dumps({account_id: account}),
        "TICKER_SECRET_KEY": Fernet.generate_key().decode(),
        "TICKER_ALLOW_OPEN": "true",  # no API keys: the benchmark's clients call without one
    }
