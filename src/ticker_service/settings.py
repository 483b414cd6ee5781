"""Settings read from the environment, grouped by concern.

Each variable is declared once, on the field it sets: its name and its parser in `Env(...)`, its
default as the field's default. Every variable is parsed up front, so a malformed value stops
start-up with a message that names the variable instead of surfacing later as a confusing error.
`variables()` lists them all (the README's table is checked against it).
"""

from __future__ import annotations

import json
import os
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from croniter import croniter

from ticker_service.brokers.accounts import DEFAULT_BROKER, AccountConfig, AccountError, parse_accounts


class SettingsError(ValueError):
    """A configuration value is malformed; the message names the variable."""


Parser = Callable[[str, str], Any]  # (variable name, raw text) -> value, or SettingsError


@dataclass(frozen=True, slots=True)
class Env:
    """The environment variable that sets a field, and how its text is read."""

    name: str
    parse: Parser
    help: str = ""


# ---- parsers -------------------------------------------------------------------------------------


def text(_name: str, raw: str) -> str:
    return raw


def boolean(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name}: expected true or false, got {raw!r}")


def number(minimum: float | None = None) -> Parser:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise SettingsError(f"{name}: must be at least {minimum}, got {raw!r}")
        return value

    return parse


def whole(minimum: int | None = None, maximum: int | None = None) -> Parser:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name}: expected a whole number, got {raw!r}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise SettingsError(f"{name}: out of range, got {raw!r}")
        return value

    return parse


def one_of(*choices: str, upper: bool = False) -> Parser:
    def parse(name: str, raw: str) -> str:
        value = raw.upper() if upper else raw
        if value not in choices:
            raise SettingsError(f"{name}: expected one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def cron(name: str, raw: str) -> str:
    if not croniter.is_valid(raw):
        raise SettingsError(f"{name}: not a cron expression: {raw!r}")
    return raw


def seconds_list(name: str, raw: str) -> tuple[float, ...]:
    parts = [p for p in raw.split(",") if p.strip()]
    if not parts:
        raise SettingsError(f"{name}: expected comma-separated seconds")
    return tuple(number(0)(name, p) for p in parts)


def database_url(name: str, raw: str) -> str:
    url = raw.strip()
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    if not url.startswith("postgresql+asyncpg://"):
        raise SettingsError(f"{name}: expected postgresql+asyncpg://user:pw@host:5432/db")
    return url


def path(_name: str, raw: str) -> Path:
    return Path(raw)


def readable_file(name: str, raw: str) -> str:
    if not Path(raw).is_file():
        raise SettingsError(f"{name}: no such file: {raw!r}")
    return raw


def date_list(name: str, raw: str) -> tuple[date, ...]:
    try:
        return tuple(date.fromisoformat(p.strip()) for p in raw.split(",") if p.strip())
    except ValueError:
        raise SettingsError(f"{name}: expected comma-separated dates (yyyy-mm-dd), got {raw!r}") from None


def fernet_key(name: str, raw: str) -> str:
    from cryptography.fernet import Fernet

    try:
        Fernet(raw.encode())
    except (ValueError, TypeError):
        raise SettingsError(
            f"{name}: not a Fernet key (32 url-safe base64-encoded bytes; make one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
        ) from None
    return raw


def accounts_json(name: str, raw: str) -> dict[str, AccountConfig]:
    try:
        return parse_accounts(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{name}: not JSON: {exc}") from None
    except AccountError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def rate_rules(name: str, raw: str) -> tuple[tuple[int, float], ...]:
    """`count/seconds` pairs, comma-separated: "10/1,300/60" is 10 in any second and 300 in any minute."""
    rules = []
    for part in (p.strip() for p in raw.split(",")):
        count, slash, seconds = part.partition("/")
        try:
            rule = (int(count), float(seconds))
        except ValueError:
            rule = (0, 0.0)
        if not slash or rule[0] < 1 or not 0 < rule[1] <= 86_400:
            raise SettingsError(f"{name}: expected requests/seconds pairs such as 10/1,300/60, got {part!r}")
        rules.append(rule)
    return tuple(rules)


def api_keys_json(name: str, raw: str) -> dict[str, list[str]]:
    try:
        keys = msgspec.json.decode(raw, type=dict[str, list[str]])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SettingsError(f"{name}: {exc}") from None
    if any(len(key) < 16 for key in keys):
        raise SettingsError(f"{name}: every key must be at least 16 characters")
    return keys


# ---- the groups ---------------------------------------------------------------------------------

DEFAULT_RETRY_SCHEDULE = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 28800.0)  # ~22 h


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True):
    url: Annotated[str | None, Env("DATABASE_URL", database_url, "unset: embedded PostgreSQL")] = None
    data_dir: Annotated[Path, Env("TICKER_DATA_DIR", path, "embedded database and local state")] = Path(".ticker-data")
    pool_size: Annotated[int, Env("TICKER_DB_POOL_SIZE", whole(1, 500), "request-path connections")] = 16
    migrate_on_start: Annotated[bool, Env("TICKER_MIGRATE_ON_START", boolean)] = True
    task_retention_days: Annotated[float, Env("TASK_RETENTION_DAYS", number(1))] = 7.0
    task_cleanup_schedule: Annotated[str, Env("TASK_CLEANUP_SCHEDULE", cron, "cron, Asia/Kolkata")] = "0 2 * * *"


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True):
    host: Annotated[str, Env("HOST", text)] = "127.0.0.1"
    port: Annotated[int, Env("PORT", whole(0, 65535))] = 8080
    instance_id: Annotated[str, Env("TICKER_INSTANCE_ID", text, "names this process in leases and logs")] = (
        msgspec.field(default_factory=lambda: uuid.uuid4().hex[:12])
    )
    # SO_SNDBUF of served connections (Linux doubles it); 0: the kernel's autotuning
    socket_send_buffer: Annotated[int, Env("TICKER_SOCKET_SEND_BUFFER", whole(0, 64 * 1024 * 1024))] = 262_144
    # slow clients: seconds for a request's headers to arrive (from the connection's first byte), and
    # for its body (from the end of the headers); past either the answer is 408 and the connection closed
    header_timeout: Annotated[float, Env("TICKER_HEADER_TIMEOUT", number(0.1))] = 5.0
    body_timeout: Annotated[float, Env("TICKER_BODY_TIMEOUT", number(0.1))] = 30.0
    # the largest request body accepted (413 beyond): an order or a 20-leg batch is a few kilobytes
    max_body_bytes: Annotated[int, Env("TICKER_MAX_BODY_BYTES", whole(1024, 10 * 1024 * 1024))] = 65_536


def _default_accounts() -> dict[str, AccountConfig]:
    return parse_accounts({"primary": {"broker": DEFAULT_BROKER}})


class AccountsSettings(msgspec.Struct, frozen=True, kw_only=True):
    brokers: Annotated[dict[str, AccountConfig], Env("TICKER_ACCOUNTS", accounts_json)] = msgspec.field(
        default_factory=_default_accounts
    )
    api_keys: Annotated[dict[str, list[str]] | None, Env("TICKER_API_KEYS", api_keys_json)] = None
    # requests each API key may make (every instance together): (count, seconds) pairs; () is off
    rate_limits: Annotated[tuple[tuple[int, float], ...], Env("TICKER_RATE_LIMITS", rate_rules)] = ()
    # Fernet key that encrypts stored broker tokens; unset: tokens are not stored (PUT .../session refused)
    secret_key: Annotated[str | None, Env("TICKER_SECRET_KEY", fernet_key)] = None
    # the instruments the accounts trade (Kite's CSV format); unset: the list shipped with the package
    instruments_file: Annotated[str | None, Env("TICKER_INSTRUMENTS_FILE", readable_file)] = None


class ExecutionSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The executor's timings; the defaults suit a 2-core machine, tests compress them."""

    workers: Annotated[int, Env("TICKER_RELAY_WORKERS", whole(0, 256), "executor workers per process")] = 8
    lease_seconds: Annotated[float, Env("TICKER_LEASE_SECONDS", number(0.5))] = 10.0
    broker_timeout: Annotated[float, Env("TICKER_BROKER_TIMEOUT", number(0.1))] = 7.0
    poll_interval: Annotated[float, Env("TICKER_POLL_INTERVAL", number(0.05))] = 1.0
    retry_base_seconds: Annotated[float, Env("TICKER_RETRY_BASE_SECONDS", number(0.0))] = 0.5
    max_attempts: Annotated[int, Env("TICKER_MAX_ATTEMPTS", whole(1, 100))] = 5
    default_expires_in: Annotated[float, Env("TICKER_DEFAULT_EXPIRES_IN", number(1.0))] = 30.0
    reconcile_interval: Annotated[float, Env("TICKER_RECONCILE_INTERVAL", number(0.1))] = 10.0
    matcher_interval: Annotated[float, Env("TICKER_MATCHER_INTERVAL", number(0.01))] = 0.25
    # an account's circuit breaker: network failures in a row that open it, seconds between probes
    breaker_failures: Annotated[int, Env("TICKER_BREAKER_FAILURES", whole(1, 1000))] = 5
    breaker_probe_seconds: Annotated[float, Env("TICKER_BREAKER_PROBE_SECONDS", number(0.1))] = 10.0
    # added to each of a broker's rate-limit windows: requests are counted when they arrive, and the
    # time between our grant and their arrival varies (a smaller margin allows closer to the limit)
    rate_margin_seconds: Annotated[float, Env("TICKER_RATE_MARGIN_SECONDS", number(0.0))] = 0.1
    # a broker feed (Kite's ticker) with no frame, not even a heartbeat, for this long is reconnected
    feed_silence_seconds: Annotated[float, Env("TICKER_FEED_SILENCE_SECONDS", number(0.5))] = 5.0


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True):
    allow_private: Annotated[bool, Env("WEBHOOK_ALLOW_PRIVATE", boolean)] = False
    retry_schedule: Annotated[tuple[float, ...], Env("WEBHOOK_RETRY_SCHEDULE", seconds_list)] = DEFAULT_RETRY_SCHEDULE
    disable_after: Annotated[float, Env("WEBHOOK_DISABLE_AFTER", number(0))] = 86400.0
    timeout: Annotated[float, Env("WEBHOOK_TIMEOUT", number(0.1))] = 10.0
    concurrency: Annotated[int, Env("WEBHOOK_CONCURRENCY", whole(1, 10_000), "deliveries in flight per process")] = 128
    # ... and per endpoint, so one slow receiver cannot take them all
    endpoint_concurrency: Annotated[int, Env("WEBHOOK_ENDPOINT_CONCURRENCY", whole(1, 1000))] = 16
    # endpoints one account may register: bounds what one account can ask of the send slots
    max_per_account: Annotated[int, Env("WEBHOOK_MAX_PER_ACCOUNT", whole(1, 10_000))] = 20


class StreamSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The WebSocket order stream: a socket's bounded backlog, and the server's protocol pings."""

    backlog: Annotated[int, Env("TICKER_WS_BACKLOG", whole(2, 1_000_000))] = 1000
    ping_interval: Annotated[float, Env("TICKER_WS_PING_INTERVAL", number(0), "0: no protocol pings")] = 20.0
    ping_timeout: Annotated[float, Env("TICKER_WS_PING_TIMEOUT", number(0.1))] = 20.0
    # permessage-deflate: per socket, so an event is no longer encoded once for all
    compression: Annotated[bool, Env("TICKER_WS_COMPRESSION", boolean)] = False


class MarketDataSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Instruments and candles, live ticks (`marketdata/`)."""

    # NSE trading holidays beyond the fixed-date ones built in (Jan 26, May 1, Aug 15, Oct 2, Dec 25): a
    # monthly expiry on one moves to the trading day before
    holidays: Annotated[tuple[date, ...], Env("TICKER_MARKET_HOLIDAYS", date_list, "comma-separated dates")] = ()
    # Kite's ticker limits per account (API key); lower them to see the feed spread over connections
    feed_connections: Annotated[int, Env("TICKER_FEED_CONNECTIONS", whole(1, 3), "ticker connections per account")] = 3
    instruments_per_connection: Annotated[int, Env("TICKER_FEED_INSTRUMENTS_PER_CONNECTION", whole(1, 3000))] = 3000
    # seconds between two ticks of a subscribed instrument on a paper account
    paper_tick_interval: Annotated[float, Env("TICKER_PAPER_TICK_INTERVAL", number(0.01))] = 1.0
    # GET /quote answers from a tick of the account's feed no older than this, else asks the broker
    quote_tick_max_age: Annotated[float, Env("TICKER_QUOTE_TICK_MAX_AGE", number(0))] = 10.0


class LogSettings(msgspec.Struct, frozen=True, kw_only=True):
    level: Annotated[str, Env("LOG_LEVEL", one_of("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", upper=True))] = (
        "INFO"
    )
    format: Annotated[Literal["json", "console"], Env("LOG_FORMAT", one_of("json", "console"))] = "json"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    accounts: AccountsSettings = msgspec.field(default_factory=AccountsSettings)
    execution: ExecutionSettings = msgspec.field(default_factory=ExecutionSettings)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    stream: StreamSettings = msgspec.field(default_factory=StreamSettings)
    logging: LogSettings = msgspec.field(default_factory=LogSettings)
    market: MarketDataSettings = msgspec.field(default_factory=MarketDataSettings)

    # the two looked up on every request
    @property
    def account_ids(self) -> list[str]:
        return list(self.accounts.brokers)

    @property
    def api_keys(self) -> dict[str, list[str]] | None:
        return self.accounts.api_keys


GROUPS: dict[str, type[msgspec.Struct]] = {
    f.name: typing.get_args(f.type)[0] if typing.get_origin(f.type) is Annotated else f.type
    for f in msgspec.structs.fields(Settings)
}


@dataclass(frozen=True, slots=True)
class Variable:
    group: str
    field: str
    env: Env
    default: Any


def _fields(group: type[msgspec.Struct]) -> Iterator[tuple[msgspec.structs.FieldInfo, Env]]:
    hints = typing.get_type_hints(group, include_extras=True)
    for info in msgspec.structs.fields(group):
        for meta in getattr(hints[info.name], "__metadata__", ()):
            if isinstance(meta, Env):
                yield info, meta


def variables() -> list[Variable]:
    """Every environment variable the service reads, with its group, field and default."""
    out = []
    for group_name, group in GROUPS.items():
        for info, env in _fields(group):
            default = info.default if info.default is not msgspec.NODEFAULT else info.default_factory()
            out.append(Variable(group_name, info.name, env, default))
    return out


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from `env` (the process environment by default); an empty value is unset."""
    env = os.environ if env is None else env
    groups: dict[str, msgspec.Struct] = {}
    for group_name, group in GROUPS.items():
        values = {info.name: meta.parse(meta.name, raw) for info, meta in _fields(group) if (raw := env.get(meta.name))}
        groups[group_name] = group(**values)
    settings = Settings(**groups)  # type: ignore[arg-type]
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    """Rules between variables."""
    execution = settings.execution
    if execution.lease_seconds <= execution.broker_timeout:
        raise SettingsError("TICKER_LEASE_SECONDS: the lease must be longer than TICKER_BROKER_TIMEOUT")
    for allowed in (settings.api_keys or {}).values():
        unknown = [a for a in allowed if a != "*" and a not in settings.accounts.brokers]
        if unknown:
            raise SettingsError(f"TICKER_API_KEYS: unknown account ids {unknown}")


_SECRET_FIELDS = ("api_key", "api_secret", "access_token")


def describe(settings: Settings) -> dict[str, Any]:
    """The settings as a dict safe to log: passwords, secrets, tokens and keys are masked."""
    data: dict[str, Any] = msgspec.to_builtins(settings, enc_hook=str)
    database = data["database"]
    if database.get("url"):
        head, _, tail = database["url"].rpartition("@")
        if head and ":" in head.split("://", 1)[-1]:
            scheme, creds = head.split("://", 1)
            database["url"] = f"{scheme}://{creds.split(':', 1)[0]}:***@{tail}"
    for account in data["accounts"]["brokers"].values():
        for secret in _SECRET_FIELDS:
            if account.get(secret):
                account[secret] = "***"
    if data["accounts"].get("secret_key"):
        data["accounts"]["secret_key"] = "***"  # noqa: S105
    if data["accounts"].get("api_keys"):
        data["accounts"]["api_keys"] = {f"{k[:4]}***": v for k, v in data["accounts"]["api_keys"].items()}
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]
