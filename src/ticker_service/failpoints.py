"""Crash points for the crash tests.

`TICKER_FAILPOINTS=name[,name]` makes the process SIGKILL itself when it reaches one of the named
points, so a test can crash it at an exact, otherwise unreachable moment (for example between the
paper broker committing a fill and the service recording its event). Unset in normal operation,
where `failpoint()` is a set lookup.
"""

from __future__ import annotations

import os
import signal

_ENABLED = frozenset(p.strip() for p in os.environ.get("TICKER_FAILPOINTS", "").split(",") if p.strip())


def failpoint(name: str) -> None:
    if name in _ENABLED:
        os.kill(os.getpid(), signal.SIGKILL)
