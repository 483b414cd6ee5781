"""Settings read from the environment.

Every variable is parsed up front so that a malformed value stops start-up with a message that
names the variable, instead of surfacing later as a confusing runtime error.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
from croniter import croniter

DEFAULT_RETRY_SCHEDULE = "5,30,120,600,1800,3600,7200,14400,28800,28800"  # about 22 hours in all


class SettingsError(ValueError):
    """A configuration value is malformed; the message names the variable."""


class MarginRates(msgspec.Struct, forbid_unknown_fields=True):
    """Share of an order's value blocked as margin, by product."""

    CNC: float = 1.0
    MIS: float = 0.2
    NRML: float = 0.15


class AccountSettings(msgspec.Struct, forbid_unknown_fields=True):
    """One trading account and its broker.

    The paper fields (`funds` ... `enforce_expiry`) only matter for `broker = "paper"`; the Kite
    fields only for `broker = "kite"`.
    """

    broker: Literal["paper", "kite"] = "paper"
    # paper broker
    funds: float = 1_000_000.0
    margin: MarginRates = msgspec.field(default_factory=MarginRates)
    seed: int = 0
    fail_rate: float = 0.0
    latency_ms: int = 0
    lose_response_rate: float = 0.0
    enforce_market_hours: bool = False
    enforce_expiry: bool = False
    # kite
    api_key: str | None = None
    api_secret: str | None = None
    access_token: str | None = None
    root: str | None = None
    ticker_root: str | None = None

    def __post_init__(self) -> None:
        for name in ("fail_rate", "lose_response_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        if self.funds < 0:
            raise ValueError("funds must not be negative")
        if self.broker == "kite" and not (self.api_key and self.access_token):
            raise ValueError("a kite account needs api_key and access_token")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    data_dir: Path = Path(".ticker-data")
    host: str = "127.0.0.1"
    port: int = 8080
    accounts: dict[str, AccountSettings] = msgspec.field(default_factory=lambda: {"primary": AccountSettings()})
    api_keys: dict[str, list[str]] | None = None
    task_retention_days: float = 7.0
    task_cleanup_schedule: str = "0 2 * * *"
    webhook_allow_private: bool = False
    webhook_retry_schedule: tuple[float, ...] = tuple(float(x) for x in DEFAULT_RETRY_SCHEDULE.split(","))
    webhook_disable_after: float = 86400.0
    webhook_timeout: float = 10.0
    webhook_concurrency: int = 128  # deliveries in flight per process
    webhook_endpoint_concurrency: int = 16  # ... and per endpoint, so one slow receiver cannot take them all
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    # relay tuning: defaults suit a 2-core machine; tests compress the timings
    relay_workers: int = 8
    db_pool_size: int = 16  # connections of the request path's asyncpg pool (the engine has its own)
    lease_seconds: float = 10.0
    broker_timeout: float = 7.0
    poll_interval: float = 1.0
    retry_base_seconds: float = 0.5
    max_attempts: int = 5
    default_expires_in: float = 30.0
    reconcile_interval: float = 10.0
    matcher_interval: float = 0.25
    instance_id: str = msgspec.field(default_factory=lambda: uuid.uuid4().hex[:12])
    migrate_on_start: bool = True
    # WebSocket order stream (stream/): a socket's bounded backlog, and the server's protocol pings
    ws_backlog: int = 1000
    ws_ping_interval: float = 20.0  # 0: no protocol pings
    ws_ping_timeout: float = 20.0
    ws_compression: bool = False  # permessage-deflate: per socket, so an event is no longer encoded once
    socket_send_buffer: int = 262_144  # SO_SNDBUF of served connections (Linux doubles it); 0: autotuning


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name}: expected true or false, got {raw!r}")


def _parse_number(name: str, raw: str, *, minimum: float | None = None) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {raw!r}")
    return value


def _parse_int(name: str, raw: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a whole number, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise SettingsError(f"{name}: out of range, got {raw!r}")
    return value


def _parse_accounts(raw: str) -> dict[str, AccountSettings]:
    try:
        accounts = msgspec.json.decode(raw, type=dict[str, AccountSettings])
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise SettingsError(f"TICKER_ACCOUNTS: {exc}") from None
    if not accounts:
        raise SettingsError("TICKER_ACCOUNTS: at least one account is needed")
    for account_id in accounts:
        if not account_id or len(account_id) > 64 or not account_id.replace("_", "").replace("-", "").isalnum():
            raise SettingsError(f"TICKER_ACCOUNTS: invalid account id {account_id!r}")
    return accounts


def _parse_api_keys(raw: str, accounts: Mapping[str, AccountSettings]) -> dict[str, list[str]]:
    try:
        keys = msgspec.json.decode(raw, type=dict[str, list[str]])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SettingsError(f"TICKER_API_KEYS: {exc}") from None
    for key, allowed in keys.items():
        if len(key) < 16:
            raise SettingsError("TICKER_API_KEYS: every key must be at least 16 characters")
        unknown = [a for a in allowed if a != "*" and a not in accounts]
        if unknown:
            raise SettingsError(f"TICKER_API_KEYS: unknown account ids {unknown}")
    return keys


def _parse_database_url(raw: str) -> str:
    url = raw.strip()
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    if not url.startswith("postgresql+asyncpg://"):
        raise SettingsError("DATABASE_URL: expected postgresql+asyncpg://user:pw@host:5432/db")
    return url


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from `env` (the process environment by default)."""
    env = os.environ if env is None else env
    kwargs: dict[str, Any] = {}
    if raw := env.get("DATABASE_URL"):
        kwargs["database_url"] = _parse_database_url(raw)
    if raw := env.get("TICKER_DATA_DIR"):
        kwargs["data_dir"] = Path(raw)
    if raw := env.get("HOST"):
        kwargs["host"] = raw
    if raw := env.get("PORT"):
        kwargs["port"] = _parse_int("PORT", raw, minimum=0, maximum=65535)
    accounts = _parse_accounts(env["TICKER_ACCOUNTS"]) if env.get("TICKER_ACCOUNTS") else None
    if accounts is not None:
        kwargs["accounts"] = accounts
    if raw := env.get("TICKER_API_KEYS"):
        kwargs["api_keys"] = _parse_api_keys(raw, accounts or {"primary": AccountSettings()})
    if raw := env.get("TASK_RETENTION_DAYS"):
        kwargs["task_retention_days"] = _parse_number("TASK_RETENTION_DAYS", raw, minimum=1)
    if raw := env.get("TASK_CLEANUP_SCHEDULE"):
        if not croniter.is_valid(raw):
            raise SettingsError(f"TASK_CLEANUP_SCHEDULE: not a cron expression: {raw!r}")
        kwargs["task_cleanup_schedule"] = raw
    if raw := env.get("WEBHOOK_ALLOW_PRIVATE"):
        kwargs["webhook_allow_private"] = _parse_bool("WEBHOOK_ALLOW_PRIVATE", raw)
    if raw := env.get("WEBHOOK_RETRY_SCHEDULE"):
        parts = [p for p in raw.split(",") if p.strip()]
        if not parts:
            raise SettingsError("WEBHOOK_RETRY_SCHEDULE: expected comma-separated seconds")
        kwargs["webhook_retry_schedule"] = tuple(_parse_number("WEBHOOK_RETRY_SCHEDULE", p, minimum=0) for p in parts)
    if raw := env.get("WEBHOOK_DISABLE_AFTER"):
        kwargs["webhook_disable_after"] = _parse_number("WEBHOOK_DISABLE_AFTER", raw, minimum=0)
    if raw := env.get("WEBHOOK_TIMEOUT"):
        kwargs["webhook_timeout"] = _parse_number("WEBHOOK_TIMEOUT", raw, minimum=0.1)
    if raw := env.get("WEBHOOK_CONCURRENCY"):
        kwargs["webhook_concurrency"] = _parse_int("WEBHOOK_CONCURRENCY", raw, minimum=1, maximum=10_000)
    if raw := env.get("WEBHOOK_ENDPOINT_CONCURRENCY"):
        kwargs["webhook_endpoint_concurrency"] = _parse_int(
            "WEBHOOK_ENDPOINT_CONCURRENCY", raw, minimum=1, maximum=1000
        )
    if raw := env.get("LOG_LEVEL"):
        if raw.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise SettingsError(f"LOG_LEVEL: unknown level {raw!r}")
        kwargs["log_level"] = raw.upper()
    if raw := env.get("LOG_FORMAT"):
        if raw not in {"json", "console"}:
            raise SettingsError(f"LOG_FORMAT: expected json or console, got {raw!r}")
        kwargs["log_format"] = raw
    numeric: dict[str, tuple[str, float]] = {
        "TICKER_LEASE_SECONDS": ("lease_seconds", 0.5),
        "TICKER_BROKER_TIMEOUT": ("broker_timeout", 0.1),
        "TICKER_POLL_INTERVAL": ("poll_interval", 0.05),
        "TICKER_RETRY_BASE_SECONDS": ("retry_base_seconds", 0.0),
        "TICKER_DEFAULT_EXPIRES_IN": ("default_expires_in", 1.0),
        "TICKER_RECONCILE_INTERVAL": ("reconcile_interval", 0.1),
        "TICKER_MATCHER_INTERVAL": ("matcher_interval", 0.01),
    }
    for var, (field, minimum) in numeric.items():
        if raw := env.get(var):
            kwargs[field] = _parse_number(var, raw, minimum=minimum)
    if raw := env.get("TICKER_RELAY_WORKERS"):
        kwargs["relay_workers"] = _parse_int("TICKER_RELAY_WORKERS", raw, minimum=0, maximum=256)
    if raw := env.get("TICKER_DB_POOL_SIZE"):
        kwargs["db_pool_size"] = _parse_int("TICKER_DB_POOL_SIZE", raw, minimum=1, maximum=500)
    if raw := env.get("TICKER_MAX_ATTEMPTS"):
        kwargs["max_attempts"] = _parse_int("TICKER_MAX_ATTEMPTS", raw, minimum=1, maximum=100)
    if raw := env.get("TICKER_INSTANCE_ID"):
        kwargs["instance_id"] = raw
    if raw := env.get("TICKER_MIGRATE_ON_START"):
        kwargs["migrate_on_start"] = _parse_bool("TICKER_MIGRATE_ON_START", raw)
    if raw := env.get("TICKER_WS_BACKLOG"):
        kwargs["ws_backlog"] = _parse_int("TICKER_WS_BACKLOG", raw, minimum=2, maximum=1_000_000)
    if raw := env.get("TICKER_WS_PING_INTERVAL"):
        kwargs["ws_ping_interval"] = _parse_number("TICKER_WS_PING_INTERVAL", raw, minimum=0)
    if raw := env.get("TICKER_WS_PING_TIMEOUT"):
        kwargs["ws_ping_timeout"] = _parse_number("TICKER_WS_PING_TIMEOUT", raw, minimum=0.1)
    if raw := env.get("TICKER_WS_COMPRESSION"):
        kwargs["ws_compression"] = _parse_bool("TICKER_WS_COMPRESSION", raw)
    if raw := env.get("TICKER_SOCKET_SEND_BUFFER"):
        kwargs["socket_send_buffer"] = _parse_int("TICKER_SOCKET_SEND_BUFFER", raw, minimum=0, maximum=64 * 1024 * 1024)
    settings = Settings(**kwargs)
    if settings.lease_seconds <= settings.broker_timeout:
        raise SettingsError("TICKER_LEASE_SECONDS: the lease must be longer than TICKER_BROKER_TIMEOUT")
    return settings


def describe(settings: Settings) -> dict[str, Any]:
    """The settings as a dict safe to log: secrets and tokens are masked."""
    data: dict[str, Any] = msgspec.to_builtins(settings, enc_hook=str)
    if data.get("database_url"):
        head, _, tail = data["database_url"].rpartition("@")
        if head and ":" in head.split("://", 1)[-1]:
            scheme, creds = head.split("://", 1)
            data["database_url"] = f"{scheme}://{creds.split(':', 1)[0]}:***@{tail}"
    for account in data.get("accounts", {}).values():
        for secret in ("api_secret", "access_token"):
            if account.get(secret):
                account[secret] = "***"
    if data.get("api_keys"):
        data["api_keys"] = {f"{k[:4]}***": v for k, v in data["api_keys"].items()}
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]
