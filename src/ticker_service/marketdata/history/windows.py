"""Time ranges (half-open, [start, end)): what is left of a request once the stored ranges are taken
away, and how a gap is cut into windows no longer than Kite serves per request.

Windows follow each other exactly (one ends where the next begins) and Kite's `to` is inclusive, so
each window asks up to one second before its end: no candle falls between two windows, and none is
in both.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

Range = tuple[datetime, datetime]


def subtract(want: Range, covered: Iterable[Range]) -> list[Range]:
    """The parts of `want` outside every covered range, in order."""
    gaps: list[Range] = []
    cursor, end = want
    for start, stop in sorted(covered):
        if stop <= cursor:
            continue
        if start >= end:
            break
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, stop)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def split(gap: Range, max_days: int) -> list[Range]:
    """`gap` cut into consecutive windows of at most `max_days` days."""
    step = timedelta(days=max_days)
    out: list[Range] = []
    start, end = gap
    while start < end:
        out.append((start, min(start + step, end)))
        start += step
    return out
