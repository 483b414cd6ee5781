"""README's two commands work on a fresh clone: `./run serve` sets itself up and serves the spec's order."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import SPEC_ORDER
from tests.e2e.server import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./run serve" in readme and "./run test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./run test" in ci


async def test_fresh_clone_serves_with_one_command(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "VIRTUAL_ENV", "TICKER_ACCOUNTS")}
    env.update(PORT=str(port), TICKER_DATA_DIR=str(tmp_path / "data"), LOG_LEVEL="INFO")
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        ["./run", "serve"],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(1200):  # the first run installs the environment: allow a few minutes
                if proc.poll() is not None:
                    raise AssertionError((tmp_path / "serve.log").read_text()[-3000:])
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.25)
            else:
                raise AssertionError("./run serve did not come up")
            r = await http.post("/orders/place", json=SPEC_ORDER)
            assert r.status_code == 201, r.text
            assert r.json()["order"]["status"] == "COMPLETE"
        # the test command bootstraps from the same environment
        collect = subprocess.run(
            ["./run", "test", "--collect-only", "-q", "tests/unit"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=600,
        )
        assert collect.returncode == 0, collect.stdout + collect.stderr
        assert "tests collected" in collect.stdout or "test_settings" in collect.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    log_text = (tmp_path / "serve.log").read_text()
    assert proc.returncode == 0, log_text[-3000:]
    assert "runtime stopped" in log_text  # a graceful shutdown, not a crash
    # the embedded database was stopped with the last process that used it
    assert not (tmp_path / "data" / "pg" / "postmaster.pid").exists()
