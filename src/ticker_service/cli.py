"""`ticker-service serve | db upgrade|downgrade [REV] | tasks list|retry`."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from ticker_service.settings import Settings, SettingsError, describe, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"ticker-service: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _database_url(settings: Settings) -> str:
    from ticker_service.db.embedded import resolve_database_url

    return resolve_database_url(settings)


def cmd_serve(_args: argparse.Namespace) -> int:
    import structlog
    import uvicorn

    from ticker_service.app import create_app
    from ticker_service.brokers.registry import BrokerUnsupported, check_supported
    from ticker_service.db.migrate import run_migrations
    from ticker_service.jobs.singleton import check_account_locks
    from ticker_service.logging import configure_logging

    settings = _settings()
    try:  # every account's broker can be driven: refused here in one line, not by a traceback later
        check_supported(settings.accounts.brokers)
        check_account_locks(settings.accounts.brokers)
    except (BrokerUnsupported, ValueError) as exc:
        print(f"ticker-service: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.logging.level, settings.logging.format)
    log = structlog.get_logger("ticker")
    url = _database_url(settings)
    if settings.database.migrate_on_start:
        asyncio.run(run_migrations(url))
    log.info("starting", settings=describe(settings), embedded_database=settings.database.url is None)
    # migrations already ran above (under the advisory lock); the lifespan need not repeat them
    app = create_app(settings, database_url=url, migrate=False, freeze_gc=True)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal with the handler it found:
    # make that a normal exit so atexit hooks (stopping the embedded database) still run
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from ticker_service.system.http_protocol import deadline_protocol

    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        # httptools, with deadlines for a request's headers and body (slow clients)
        http=deadline_protocol(settings.server.header_timeout, settings.server.body_timeout),
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.execution.broker_timeout) + 5,
        ws_ping_interval=settings.stream.ping_interval or None,
        ws_ping_timeout=settings.stream.ping_timeout,
        ws_per_message_deflate=settings.stream.compression,
    )
    _stream_closing_server(config, app, settings.server.socket_send_buffer).run()
    return 0


def _stream_closing_server(config: Any, app: Any, send_buffer: int) -> Any:
    """uvicorn, plus two things for the order stream's WebSockets.

    - Shutdown: uvicorn closes open WebSockets with 1012 before the app's shutdown runs; this closes
      the order stream's sockets first, with 1001 and the `since` to resume from.
    - A bounded kernel send buffer per connection (SO_SNDBUF on the listener, inherited by accepted
      sockets): with autotuning a reader that stops reading can park ~4 MB in the kernel before the
      stream's own backlog even starts to fill.
    """
    import uvicorn

    class StreamClosingServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if send_buffer > 0:
                for server in getattr(self, "servers", []):
                    for sock in server.sockets:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for server in self.servers:
                server.close()  # no new connections while the streams close
            runtime = getattr(app.state, "runtime", None)
            if runtime is not None:
                await runtime.stream.close_all()
            await super().shutdown(sockets)

    return StreamClosingServer(config)


def cmd_db(args: argparse.Namespace) -> int:
    from ticker_service.db.migrate import run_migrations

    settings = _settings()
    url = _database_url(settings)
    if args.action == "upgrade":
        asyncio.run(run_migrations(url, args.revision or "head"))
    else:
        asyncio.run(run_migrations(url, args.revision or "base", downgrade=True))
    print(f"database {args.action} to {args.revision or ('head' if args.action == 'upgrade' else 'base')}: done")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from ticker_service.db.engine import asyncpg_dsn, create_engine
    from ticker_service.db.pool import create_pool
    from ticker_service.orders.lifecycle.tasks import NotRetryable, list_tasks, retry_dead_letter

    settings = _settings()
    url = _database_url(settings)

    async def run() -> int:
        engine = create_engine(url, pool_size=1, max_overflow=0)
        try:
            if args.action == "list":
                statuses = args.status.split(",") if args.status else None
                tasks = await list_tasks(engine, statuses=statuses, account_ids=None, limit=args.limit, offset=0)
                for t in tasks:
                    print(
                        json.dumps(
                            {
                                k: t[k]
                                for k in (
                                    "task_id",
                                    "account_id",
                                    "operation",
                                    "status",
                                    "attempts",
                                    "order_id",
                                    "last_error",
                                )
                            }
                            | {"created_at": str(t["created_at"])}
                        )
                    )
                return 0
            # retry_dead_letter works on the request path's asyncpg pool, not on the engine
            pool = await create_pool(asyncpg_dsn(url), 1)
            try:
                task = await retry_dead_letter(pool, args.task_id)
            except NotRetryable as exc:
                print(str(exc), file=sys.stderr)
                return 1
            finally:
                await pool.close()
            if task is None:
                print(f"no task {args.task_id}", file=sys.stderr)
                return 1
            print(f"{args.task_id} requeued")
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ticker-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the service (migrations applied first)").set_defaults(func=cmd_serve)
    db = sub.add_parser("db", help="schema migrations")
    db.add_argument("action", choices=["upgrade", "downgrade"])
    db.add_argument("revision", nargs="?")
    db.set_defaults(func=cmd_db)
    tasks = sub.add_parser("tasks", help="inspect and retry tasks")
    tasks.add_argument("action", choices=["list", "retry"])
    tasks.add_argument("task_id", nargs="?")
    tasks.add_argument("--status", help="comma-separated task states")
    tasks.add_argument("--limit", type=int, default=50)
    tasks.set_defaults(func=cmd_tasks)
    args = parser.parse_args(argv)
    if args.command == "tasks" and args.action == "retry" and not args.task_id:
        parser.error("tasks retry needs a TASK_ID")
    result: int = args.func(args)
    return result
