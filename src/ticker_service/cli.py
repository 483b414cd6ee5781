"""`ticker-service serve | db upgrade|downgrade|current | tasks list|retry|cleanup | webhooks list|replay |
accounts list|session`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from ticker_service.settings import Settings, SettingsError, describe, load_settings, open_exposure


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"ticker-service: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _operator_settings() -> Settings:
    """The settings of an operator's command: its log lines go to stderr, stdout is the answer."""
    from ticker_service.logging import configure_logging

    settings = _settings()
    configure_logging(settings.logging.level, settings.logging.format)
    return settings


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
    exposure = open_exposure(settings)
    if exposure is not None:  # no API key: refused before anything starts, not found out later
        print(f"ticker-service: refusing to start open: {exposure}", file=sys.stderr)
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
    from ticker_service import operator_commands as ops
    from ticker_service.db.migrate import run_migrations

    settings = _operator_settings()
    url = _database_url(settings)
    if args.action == "current":
        return asyncio.run(ops.db_current(url))
    if args.action == "upgrade":
        asyncio.run(run_migrations(url, args.revision or "head"))
    else:
        asyncio.run(run_migrations(url, args.revision or "base", downgrade=True))
    print(f"database {args.action} to {args.revision or ('head' if args.action == 'upgrade' else 'base')}: done")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from ticker_service import operator_commands as ops

    settings = _operator_settings()
    url = _database_url(settings)
    if args.action == "list":
        statuses = args.status.split(",") if args.status else None
        return asyncio.run(ops.tasks_list(url, statuses, args.limit))
    if args.action == "cleanup":
        return asyncio.run(ops.tasks_cleanup(url, settings))
    return asyncio.run(ops.tasks_retry(url, args.task_id))


def cmd_webhooks(args: argparse.Namespace) -> int:
    from ticker_service import operator_commands as ops

    settings = _operator_settings()
    url = _database_url(settings)
    if args.action == "list":
        return asyncio.run(ops.webhooks_list(url))
    return asyncio.run(ops.webhooks_replay(url, settings, args.webhook_id, args.delivery_id))


def cmd_accounts(args: argparse.Namespace) -> int:
    from ticker_service import operator_commands as ops

    settings = _operator_settings()
    url = _database_url(settings)
    if args.action == "list":
        return asyncio.run(ops.accounts_list(url, settings))
    return asyncio.run(ops.accounts_session(url, settings, args.account_id))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ticker-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the service (migrations applied first)").set_defaults(func=cmd_serve)
    db = sub.add_parser("db", help="schema migrations")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument("revision", nargs="?")
    db.set_defaults(func=cmd_db)
    tasks = sub.add_parser("tasks", help="inspect, retry and clean up tasks")
    tasks.add_argument("action", choices=["list", "retry", "cleanup"])
    tasks.add_argument("task_id", nargs="?")
    tasks.add_argument("--status", help="comma-separated task states")
    tasks.add_argument("--limit", type=int, default=50)
    tasks.set_defaults(func=cmd_tasks)
    webhooks = sub.add_parser("webhooks", help="list webhooks, replay a delivery")
    webhooks.add_argument("action", choices=["list", "replay"])
    webhooks.add_argument("webhook_id", nargs="?")
    webhooks.add_argument("delivery_id", nargs="?")
    webhooks.set_defaults(func=cmd_webhooks)
    accounts = sub.add_parser("accounts", help="accounts' states and stored sessions (never a token)")
    accounts.add_argument("action", choices=["list", "session"])
    accounts.add_argument("account_id", nargs="?")
    accounts.set_defaults(func=cmd_accounts)
    args = parser.parse_args(argv)
    if args.command == "tasks" and args.action == "retry" and not args.task_id:
        parser.error("tasks retry needs a TASK_ID")
    if args.command == "webhooks" and args.action == "replay" and not (args.webhook_id and args.delivery_id):
        parser.error("webhooks replay needs a WEBHOOK_ID and a DELIVERY_ID")
    if args.command == "accounts" and args.action == "session" and not args.account_id:
        parser.error("accounts session needs an ACCOUNT_ID")
    result: int = args.func(args)
    return result
