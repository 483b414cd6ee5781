"""Every request the fake received, with what it did with it, for tests to assert on.

Arrival times are taken before anything else happens to a request (switches, latency), on both the
monotonic clock (comparable across processes of one Linux host) and the wall clock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# What became of a request
PENDING = "pending"
ANSWERED = "answered"
DROPPED = "dropped"  # connection closed before the request took effect
LOST = "lost"  # took effect, the answer never left
RATE_LIMITED = "rate_limited"
FAILED = "failed"  # a forced error (fail_next)


@dataclass
class RecordedRequest:
    seq: int
    method: str
    path: str
    route: str
    query: dict[str, list[str]]
    form: dict[str, str]
    headers: dict[str, str]
    remote: str | None
    arrived_monotonic: float
    arrived_wall: float
    status: int | None = None
    outcome: str = PENDING

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """The most recent `limit` requests (all of them with None), so a long benchmark keeps bounded memory."""

    def __init__(self, limit: int | None = None) -> None:
        self.records: deque[RecordedRequest] = deque(maxlen=limit)
        self._seq = 0

    def add(
        self,
        method: str,
        path: str,
        route: str,
        query: Mapping[str, list[str]],
        form: Mapping[str, str],
        headers: Mapping[str, str],
        remote: str | None,
    ) -> RecordedRequest:
        self._seq += 1
        record = RecordedRequest(
            seq=self._seq,
            method=method,
            path=path,
            route=route,
            query=dict(query),
            form=dict(form),
            headers=dict(headers),
            remote=remote,
            arrived_monotonic=time.monotonic(),
            arrived_wall=time.time(),
        )
        self.records.append(record)
        return record

    def for_route(self, route: str) -> list[RecordedRequest]:
        return [r for r in self.records if r.route == route]

    def clear(self) -> None:
        self.records.clear()


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most arrivals inside any window of `window` seconds (a half-open interval [t, t + window))."""
    ordered: Sequence[float] = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
