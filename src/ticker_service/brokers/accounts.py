"""`TICKER_ACCOUNTS`: account id -> broker settings, a union tagged by `broker` (default `paper`).

Each broker declares only its own fields (`paper.config`, `kite.config`), so a field of the wrong
broker, a misspelt field or an unknown broker stops start-up with one line that names the account
and the field.
"""

from __future__ import annotations

import msgspec

from ticker_service.brokers.kite.config import KiteAccount
from ticker_service.brokers.paper.config import PaperAccount

AccountConfig = PaperAccount | KiteAccount
BROKERS = ("paper", "kite")
DEFAULT_BROKER = "paper"
MAX_ACCOUNT_ID = 64
SIMULATED_BROKERS = frozenset({"paper"})  # no real money: may run without API keys on loopback


def is_live(config: AccountConfig) -> bool:
    """Whether the account trades at a real broker (real money), which an open service must not expose."""
    return config.broker not in SIMULATED_BROKERS


class AccountError(ValueError):
    """An account entry is wrong; the message names the account and the field."""


def _check_id(account_id: str) -> None:
    if not account_id or len(account_id) > MAX_ACCOUNT_ID or not account_id.replace("_", "").replace("-", "").isalnum():
        raise AccountError(f"invalid account id {account_id[:80]!r} (letters, digits, '-' and '_', at most 64)")


def parse_account(account_id: str, raw: object) -> AccountConfig:
    _check_id(account_id)
    if not isinstance(raw, dict):
        raise AccountError(f"account {account_id!r}: expected an object of settings, got {type(raw).__name__}")
    entry = {"broker": DEFAULT_BROKER, **raw}
    if entry["broker"] not in BROKERS:
        raise AccountError(f"account {account_id!r}: broker: unknown broker {entry['broker']!r}; one of {BROKERS}")
    try:
        config: AccountConfig = msgspec.convert(entry, type=AccountConfig)
    except msgspec.ValidationError as exc:
        raise AccountError(f"account {account_id!r} ({entry['broker']}): {exc}") from None
    return config


def parse_accounts(raw: object) -> dict[str, AccountConfig]:
    if not isinstance(raw, dict):
        raise AccountError("expected an object: account id -> settings")
    if not raw:
        raise AccountError("at least one account is needed")
    return {str(account_id): parse_account(str(account_id), entry) for account_id, entry in raw.items()}
