"""Statistics and the figures table, the same for every benchmark so that their figures compare."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

Row = tuple[str, str, str, str, str]  # figure, measured, target, verdict, notes


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest rank: always a latency that was measured, never one interpolated between two."""
    data = sorted(values)
    if not data:
        return float("nan")
    return data[min(len(data) - 1, max(0, math.ceil(q / 100.0 * len(data)) - 1))]


def p50_p99(values: Iterable[float]) -> str:
    data = list(values)
    return f"{percentile(data, 50):.1f} / {percentile(data, 99):.1f} ms"


def median(values: Iterable[float]) -> float:
    """Of repeated runs: one run disturbed by the machine's other work does not move it."""
    data = list(values)
    return statistics.median(data) if data else float("nan")


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}/s"


def status_text(statuses: dict[Any, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0])))


def print_table(rows: list[Row]) -> None:
    headers: Row = ("figure", "measured", "target", "", "notes")
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
