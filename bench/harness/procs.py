"""Child processes: every one is registered so that clean-up can stop it whatever the exit path."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent


def log(msg: str) -> None:
    """Progress lines carry the time, so a slow step stands out in a long run."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


_children: list[subprocess.Popen[Any]] = []


def spawn(
    cmd: list[str], *, env: dict[str, str] | None = None, out: Path | None = None, cwd: Path = ROOT
) -> subprocess.Popen[Any]:
    """Start a child in its own process group, so Ctrl-C reaches only us and we stop it ourselves."""
    stdout: Any = open(out, "ab") if out else subprocess.PIPE  # noqa: SIM115 - closed in stop()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen[Any], grace: float = 6.0) -> str:
    """Stop a child and its process group, and say how: a server that needs SIGKILL is worth reporting."""
    how = "exited"
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
            how = "stopped by SIGTERM"
        except subprocess.TimeoutExpired:
            how = f"killed (no exit {grace:.0f}s after SIGTERM)"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if proc in _children:
        _children.remove(proc)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return how


def stop_all() -> None:
    """The last line of clean-up: whatever is still running is stopped, and a failure does not stop the rest."""
    for proc in list(_children):
        try:
            stop(proc, grace=3.0)
        except Exception as exc:
            print(f"warning: could not stop pid {proc.pid}: {exc}", file=sys.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    """Load must not start before the server answers, and a server that died must fail fast, not time out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server on port {port} not healthy after {timeout:.0f}s")


# --------------------------------------------------------------------------------------------
# /proc readings (Linux)

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on


def cpu_seconds(root: int, *, with_children: bool) -> float:
    """CPU time (user+sys) of `root`, and of its live and reaped children if asked.

    CPU per order moves less with the machine's other load than a rate does. PostgreSQL works in
    one backend process per connection, children of the postmaster, hence `with_children`.
    """
    fields = _stat(root)
    if fields is None:
        return 0.0
    total = int(fields[11]) + int(fields[12])  # utime, stime
    if with_children:
        total += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (f := _stat(int(entry.name))) is not None and int(f[1]) == root:
                total += int(f[11]) + int(f[12])
    return total / _TICK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
