"""Slow and half-open clients against a real server process (`ticker-service serve`) over raw sockets:
headers or a body that arrive too slowly are cut off (408), bodies are capped far below 10 MB so that
stalled uploads hold little memory, and a client that goes away mid-request is counted as 499, not
as a 500, in the metrics and the log."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import SPEC_ORDER
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.slow

TRICKLE_GAP = 0.2  # seconds between two bytes of a slow client


@contextlib.asynccontextmanager
async def server(database_url: str, tmp_path: Path, **env: str) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(database_url, tmp_path, **env)
    try:
        process.start()
        await process.wait_healthy()
        yield process
    finally:
        process.stop()


async def trickle(port: int, head: bytes, slow: bytes) -> tuple[bytes, int]:
    """Send `head` at once, then `slow` a byte at a time; stop when the server closes or answers.
    Returns (what the server sent, how many of the slow bytes went out before that)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    sent = 0
    answer = b""
    try:
        for i in range(len(slow)):
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(4096), TRICKLE_GAP)
                break  # the server answered or closed
            writer.write(slow[i : i + 1])
            await writer.drain()
            sent += 1
        else:
            answer = await asyncio.wait_for(reader.read(4096), 30)
    except ConnectionError:
        pass
    finally:
        writer.close()
    return answer, sent


async def metric(process: ServerProcess, endpoint: str, status: str) -> float:
    async with httpx.AsyncClient(base_url=process.url, timeout=10) as http:
        text = (await http.get("/metrics")).text
    prefix = "http_requests_total{"
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix) and f'endpoint="{endpoint}"' in line and f'status="{status}"' in line
    )


async def test_headers_that_arrive_too_slowly_are_cut_off(database_url: str, tmp_path: Path) -> None:
    async with server(database_url, tmp_path, TICKER_HEADER_TIMEOUT="1") as process:
        # a header section that would take ten times the timeout to arrive
        slow = b"X-Slow: " + b"a" * int(10 / TRICKLE_GAP) + b"\r\n\r\n"
        answer, sent = await trickle(process.port, b"GET /health HTTP/1.1\r\nHost: x\r\n", slow)
        assert sent < len(slow), "the server waited for the whole header section"
        assert answer.startswith(b"HTTP/1.1 408"), answer
        # a connection that says nothing at all is closed as well
        silent, _ = await trickle(process.port, b"", b"")
        assert silent.startswith(b"HTTP/1.1 408"), silent
        # a prompt client is served, on the same server, as before
        answer, sent = await trickle(process.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", b"")
        assert answer.startswith(b"HTTP/1.1 200"), answer


async def test_a_body_that_arrives_too_slowly_is_cut_off(database_url: str, tmp_path: Path) -> None:
    async with server(database_url, tmp_path, TICKER_BODY_TIMEOUT="1") as process:
        body = json.dumps(SPEC_ORDER).encode()
        head = (
            b"POST /orders/place HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        before = await metric(process, "/orders/place", "408")
        answer, sent = await trickle(process.port, head + body[:10], body[10:])
        assert sent < len(body) - 10, "the server waited for the whole body"
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert await metric(process, "/orders/place", "408") == before + 1
        assert await metric(process, "/orders/place", "500") == 0
        # the same body sent at once is placed
        answer, _ = await trickle(process.port, head + body, b"")
        assert answer.startswith(b"HTTP/1.1 201"), answer


async def test_bodies_are_capped_and_stalled_uploads_hold_little_memory(database_url: str, tmp_path: Path) -> None:
    """30 clients announce and start sending a 4 MB body, then stall. Each is refused with 413
    (the cap is far below it), and the server's memory grows by far less than what they sent."""
    async with server(database_url, tmp_path) as process:
        rss = psutil.Process(process.proc.pid).memory_info().rss  # type: ignore[union-attr]
        size = 4 * 1024 * 1024
        chunk = b"[" * (256 * 1024)
        head = (
            b"POST /orders/place HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
        )
        connections = [await asyncio.open_connection("127.0.0.1", process.port) for _ in range(30)]
        pushed = 0

        async def upload(writer: asyncio.StreamWriter) -> None:
            nonlocal pushed
            writer.write(head)
            for _ in range(size // len(chunk)):
                writer.write(chunk)
                try:
                    await asyncio.wait_for(writer.drain(), 2)  # the server stopped reading: stall here
                except (TimeoutError, ConnectionError):
                    return
                pushed += len(chunk)

        await asyncio.gather(*(upload(w) for _, w in connections))
        grown = psutil.Process(process.proc.pid).memory_info().rss - rss  # type: ignore[union-attr]
        answers = [await asyncio.wait_for(r.read(200), 10) for r, _ in connections]
        for _, writer in connections:
            writer.close()
        assert all(a.startswith(b"HTTP/1.1 413") for a in answers), answers[:3]
        assert grown < 32 * 1024 * 1024, (grown, pushed)


async def test_a_client_that_goes_away_mid_request_is_counted_as_499(database_url: str, tmp_path: Path) -> None:
    async with server(database_url, tmp_path) as process:
        head = (
            b"POST /orders/place HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
        )
        for _ in range(3):
            _, writer = await asyncio.open_connection("127.0.0.1", process.port)
            writer.write(head + b'{"exchange": "NFO"')
            await writer.drain()
            await asyncio.sleep(0.2)  # the request is being read
            writer.close()
        await asyncio.sleep(0.5)
        assert await metric(process, "/orders/place", "499") == 3
        assert await metric(process, "/orders/place", "500") == 0
    log = "".join(p.read_text() for p in tmp_path.glob("server-*.log"))
    assert "request failed" not in log and "unhandled error" not in log, log[-2000:]
