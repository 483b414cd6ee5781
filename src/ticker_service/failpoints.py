"""Crash points for the crash tests.

`TICKER_FAILPOINTS=name[@n][,name[@n]]` makes the process SIGKILL itself when it reaches one of the
named points (the n-th time, 1 by default), so a test can crash it at an exact, otherwise
unreachable moment (for example between the paper broker committing a fill and the service
recording its event, or in the middle of a batch). Unset in normal operation, where `failpoint()`
is a dict lookup.
"""

from __future__ import annotations

import os
import signal


def _parse(raw: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in (p.strip() for p in raw.split(",")):
        if item:
            name, _, nth = item.partition("@")
            points[name] = int(nth or 1)
    return points


_ENABLED = _parse(os.environ.get("TICKER_FAILPOINTS", ""))
_hits: dict[str, int] = {}


def failpoint(name: str) -> None:
    if name in _ENABLED:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] >= _ENABLED[name]:
            os.kill(os.getpid(), signal.SIGKILL)
