"""One benchmark run: everything it starts lives in one temporary directory and is stopped on every exit.

A benchmark left behind keeps a PostgreSQL and servers loading a 2-core machine that others share,
so the run is bounded by --max-runtime, and Ctrl-C, SIGTERM, the time limit and errors all end in
the same clean-up.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.database import Database
from harness.procs import log, stop_all
from harness.servers import Servers


class BenchTimeout(Exception):
    pass


def add_session_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--max-runtime", type=int, default=600, help="give up (and clean up) after this many s")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs)")


def arm_time_limit(max_runtime: int) -> None:
    """Ctrl-C, SIGTERM and `max_runtime` seconds all raise into the running scenario, so its `finally`
    blocks (and the session's) stop what was started, instead of the process dying around them."""

    def on_signal(signum: int, _frame: Any) -> None:
        if signum == signal.SIGALRM:
            raise BenchTimeout(f"--max-runtime {max_runtime}s exceeded")
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(max_runtime)


@dataclass
class Session:
    workdir: Path
    db: Database
    servers: Servers
    started: float  # time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def run_session(prefix: str, body: Callable[[Session], int], *, max_runtime: int, keep: bool) -> int:
    """Run `body` with a fresh PostgreSQL in a new temporary directory; returns the exit status.

    130 after Ctrl-C/SIGTERM, 3 after --max-runtime; either way everything started is stopped and
    the directory removed (with --keep, all but the database files: the servers' logs stay).
    """
    arm_time_limit(max_runtime)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    database: Database | None = None
    started = time.monotonic()
    try:
        log(f"workdir {workdir}; starting embedded PostgreSQL")
        database = Database(workdir)
        return body(Session(workdir, database, Servers(workdir, database), started))
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    except BenchTimeout as exc:
        print(f"\n{exc}; cleaning up", file=sys.stderr)
        return 3
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # don't let a second Ctrl-C break the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_all()
        if database is not None:
            try:
                database.close()
            except Exception as exc:
                print(f"warning: stopping PostgreSQL failed: {exc}", file=sys.stderr)
        if keep:
            shutil.rmtree(workdir / "pgdata", ignore_errors=True)
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
