"""Which broker serves an account: a factory per `broker` name.

The runtime asks the registry for each configured account's broker and knows brokers only by the
protocol in `base`; nothing outside `brokers/` names a concrete broker. A broker that cannot serve
(not driven by this release, or missing what it needs) refuses at start-up, before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from ticker_service.brokers.accounts import AccountConfig
from ticker_service.brokers.base import Broker
from ticker_service.instruments import InstrumentBook


class BrokerUnsupported(ValueError):
    """An account names a broker that cannot be started; the message names the account."""


@dataclass(frozen=True, slots=True)
class BrokerContext:
    """What a broker may use from the service: the database, the instruments and the settings."""

    pool: asyncpg.Pool
    instruments: InstrumentBook
    settings: Any  # ticker_service.settings.Settings (not imported: settings imports brokers.accounts)


BrokerFactory = Callable[[str, Any, BrokerContext], Broker]
_FACTORIES: dict[str, BrokerFactory] = {}
_ROUTES: dict[str, list[Any]] = {}  # a broker's own HTTP routes (Kite's postbacks)


def register(broker: str, factory: BrokerFactory, routes: list[Any] | None = None) -> None:
    """Make `factory(account_id, account_config, context)` the maker of `broker` accounts; `routes`
    are the broker's own route handlers (each declares its account access, as every route does)."""
    _FACTORIES[broker] = factory
    _ROUTES[broker] = list(routes or [])


def route_handlers() -> list[Any]:
    """Every registered broker's own routes, for the application."""
    _register_builtins()
    return [handler for handlers in _ROUTES.values() for handler in handlers]


def check_supported(accounts: Mapping[str, AccountConfig]) -> None:
    """Refuse, before anything starts, an account whose broker this release cannot drive."""
    _register_builtins()
    for account_id, config in accounts.items():
        if config.broker not in _FACTORIES:
            raise BrokerUnsupported(
                f"TICKER_ACCOUNTS: account {account_id!r} uses broker {config.broker!r}, which this release "
                f"does not drive yet; use one of {sorted(_FACTORIES)}"
            )


def build_brokers(accounts: Mapping[str, AccountConfig], context: BrokerContext) -> dict[str, Broker]:
    check_supported(accounts)
    return {account: _FACTORIES[config.broker](account, config, context) for account, config in accounts.items()}


def _register_builtins() -> None:
    if "paper" not in _FACTORIES:
        from ticker_service.brokers.paper.broker import paper_broker

        register("paper", paper_broker)
    if "kite" not in _FACTORIES:
        from ticker_service.brokers.kite.broker import kite_broker
        from ticker_service.brokers.kite.postbacks import PostbacksController

        register("kite", kite_broker, [PostbacksController])
