"""The switches that make the fake misbehave the way Kite and networks do, armed per route.

Routes are named as `kiteconnect.KiteConnect._routes` names them (`order.place`, `orders`, ...), plus
`login` and `ticker`; a switch's `route` is a shell-style pattern over those names (`order.*`, `*`).
A counted switch fires on the next `n` matching requests, then disarms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

DROP = "drop"
LOSE = "lose"
RATE_LIMIT = "rate_limit"
FAIL = "fail"
REJECT = "reject"


@dataclass
class Armed:
    kind: str
    route: str
    remaining: int
    params: dict[str, Any] = field(default_factory=dict)


class Faults:
    def __init__(self) -> None:
        self._armed: list[Armed] = []
        self._latency: dict[str, float] = {}

    def arm(self, kind: str, n: int, route: str, **params: Any) -> None:
        if n > 0:
            self._armed.append(Armed(kind, route, n, params))

    def take(self, kind: str, route: str) -> Armed | None:
        """The first armed switch of `kind` matching `route`, spent once; None when none is armed."""
        for armed in self._armed:
            if armed.kind == kind and fnmatchcase(route, armed.route):
                armed.remaining -= 1
                if armed.remaining <= 0:
                    self._armed.remove(armed)
                return armed
        return None

    def armed(self) -> list[Armed]:
        return list(self._armed)

    def set_latency(self, ms: float, route: str = "*") -> None:
        if ms <= 0:
            self._latency.pop(route, None)
        else:
            self._latency[route] = ms

    def latency(self, route: str) -> float:
        """Seconds to hold `route`'s answer: the most specific matching pattern wins (exact name first)."""
        matching = [p for p in self._latency if fnmatchcase(route, p)]
        if not matching:
            return 0.0
        best = min(matching, key=lambda p: (p != route, -len(p.replace("*", ""))))
        return self._latency[best] / 1000

    def clear(self) -> None:
        self._armed.clear()
        self._latency.clear()
