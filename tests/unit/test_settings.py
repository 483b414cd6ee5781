"""Settings: a malformed value stops start-up with a message naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticker_service.settings import SettingsError, describe, load_settings, open_exposure, variables


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"TICKER_ACCOUNTS": "{not json"}, "TICKER_ACCOUNTS"),
        ({"TICKER_ACCOUNTS": '{"a": {"broker": "bank"}}'}, "TICKER_ACCOUNTS"),
        ({"TICKER_ACCOUNTS": '{"a": {"fail_rate": 2}}'}, "TICKER_ACCOUNTS"),
        ({"TICKER_ACCOUNTS": '{"a": {"colour": 1}}'}, "TICKER_ACCOUNTS"),
        ({"TICKER_API_KEYS": '{"short": ["*"]}'}, "TICKER_API_KEYS"),
        ({"TICKER_API_KEYS": '{"0123456789abcdef0": ["ghost"]}'}, "TICKER_API_KEYS"),
        ({"TASK_RETENTION_DAYS": "soon"}, "TASK_RETENTION_DAYS"),
        ({"TASK_CLEANUP_SCHEDULE": "every day"}, "TASK_CLEANUP_SCHEDULE"),
        ({"WEBHOOK_ALLOW_PRIVATE": "perhaps"}, "WEBHOOK_ALLOW_PRIVATE"),
        ({"WEBHOOK_RETRY_SCHEDULE": "1,x"}, "WEBHOOK_RETRY_SCHEDULE"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"TICKER_LEASE_SECONDS": "1", "TICKER_BROKER_TIMEOUT": "2"}, "TICKER_LEASE_SECONDS"),
        ({"TICKER_WS_BACKLOG": "many"}, "TICKER_WS_BACKLOG"),
        ({"TICKER_WS_BACKLOG": "1"}, "TICKER_WS_BACKLOG"),
        ({"TICKER_WS_PING_INTERVAL": "-1"}, "TICKER_WS_PING_INTERVAL"),
        ({"TICKER_WS_PING_TIMEOUT": "0"}, "TICKER_WS_PING_TIMEOUT"),
        ({"TICKER_SOCKET_SEND_BUFFER": "-1"}, "TICKER_SOCKET_SEND_BUFFER"),
        ({"TICKER_WS_COMPRESSION": "gzip"}, "TICKER_WS_COMPRESSION"),
    ],
)
def test_malformed_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(env)


def test_defaults_match_the_design() -> None:
    s = load_settings({})
    assert (s.server.host, s.server.port, s.database.url) == ("127.0.0.1", 8080, None)
    assert list(s.accounts.brokers) == ["primary"] and s.accounts.brokers["primary"].broker == "paper"
    assert s.accounts.brokers["primary"].funds == 1_000_000
    assert s.database.task_retention_days == 7 and s.database.task_cleanup_schedule == "0 2 * * *"
    assert s.execution.max_attempts == 5 and s.execution.default_expires_in == 30
    assert s.execution.lease_seconds <= 10 and s.execution.lease_seconds > s.execution.broker_timeout
    assert 80_000 <= sum(s.webhooks.retry_schedule) <= 100_000  # about a day
    assert s.stream.backlog == 1000 and s.stream.ping_interval == 20 and s.stream.ping_timeout == 20


def test_plain_postgres_urls_are_accepted_and_secrets_masked() -> None:
    s = load_settings(
        {
            "DATABASE_URL": "postgresql://user:hunter2@db:5432/ticker",
            "TICKER_ACCOUNTS": '{"k": {"broker": "kite", "api_key": "kkk", "api_secret": "sss", '
            '"access_token": "ttt"}}',
            "TICKER_API_KEYS": '{"0123456789abcdef": ["k"]}',
        }
    )
    assert s.database.url == "postgresql+asyncpg://user:hunter2@db:5432/ticker"
    shown = str(describe(s))
    for secret in ("hunter2", "sss", "ttt", "0123456789abcdef"):
        assert secret not in shown


def test_the_readme_documents_every_variable() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme[readme.index("## Configuration") :]
    missing = [v.env.name for v in variables() if f"`{v.env.name}`" not in table]
    assert missing == []
    assert len(variables()) >= 30  # the walk over the groups finds them


def test_each_variable_is_declared_once() -> None:
    names = [v.env.name for v in variables()]
    assert len(names) == len(set(names))


def test_the_start_up_log_tells_every_api_key_apart_and_shows_none() -> None:
    """`key-a-...` and `key-all-...` were both logged as `key-***`, one entry for two keys."""
    s = load_settings(
        {
            "TICKER_ACCOUNTS": '{"a": {}, "b": {}}',
            "TICKER_API_KEYS": '{"key-a-0123456789ab": ["a"], "key-all-0123456789ab": ["*"]}',
            "TICKER_METRICS_KEY": "metrics-key-0123456789",
        }
    )
    shown = describe(s)
    keys = shown["accounts"]["api_keys"]
    assert [k["accounts"] for k in keys] == [["a"], ["*"]]
    assert len({k["key"] for k in keys}) == 2
    text = str(shown)
    for secret in ("key-a-0123456789ab", "key-all-0123456789ab", "metrics-key-0123456789", "key-a", "key-"):
        assert secret not in text
    assert shown["server"]["metrics_key"].startswith("set (sha256:")
    assert "no key needed" in describe(load_settings({}))["accounts"]["api_keys"]


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        ({}, None),
        ({"HOST": "::1"}, None),
        ({"HOST": "127.0.0.2"}, None),
        ({"HOST": "0.0.0.0"}, "HOST"),
        ({"HOST": "192.0.2.10"}, "HOST"),
        ({"HOST": "0.0.0.0", "TICKER_ALLOW_OPEN": "true"}, None),
        ({"HOST": "0.0.0.0", "TICKER_API_KEYS": '{"0123456789abcdef": ["*"]}'}, None),
        ({"TICKER_ACCOUNTS": '{"z": {"broker": "kite", "api_key": "k"}}'}, "TICKER_ACCOUNTS"),
        ({"TICKER_ACCOUNTS": '{"z": {"broker": "kite", "api_key": "k"}}', "TICKER_ALLOW_OPEN": "true"}, None),
        (
            {
                "TICKER_ACCOUNTS": '{"z": {"broker": "kite", "api_key": "k"}}',
                "TICKER_API_KEYS": '{"0123456789abcdef": ["z"]}',
            },
            None,
        ),
    ],
)
def test_without_api_keys_only_loopback_and_paper_may_be_open(env: dict[str, str], refused: str | None) -> None:
    why = open_exposure(load_settings(env))
    if refused is None:
        assert why is None
    else:
        assert why is not None and why.startswith(refused) and "TICKER_ALLOW_OPEN" in why


def test_a_short_metrics_key_is_refused() -> None:
    with pytest.raises(SettingsError, match="TICKER_METRICS_KEY"):
        load_settings({"TICKER_METRICS_KEY": "short"})
