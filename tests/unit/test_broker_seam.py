"""The broker seam: brokers are chosen by the registry from tagged account settings, nothing outside
`brokers/` names a concrete broker, and a wrong account entry stops start-up with one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ticker_service
from ticker_service.brokers.accounts import AccountError, parse_accounts
from ticker_service.brokers.registry import check_supported

SRC = Path(ticker_service.__file__).parent
CONCRETE = re.compile(
    r"PaperBroker|PaperAccount|KiteAccount|KiteBroker|brokers\.paper|brokers\.kite|brokers import (paper|kite)"
)


def test_nothing_outside_brokers_names_a_concrete_broker() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{n}"
        for path in SRC.rglob("*.py")
        if "brokers" not in path.relative_to(SRC).parts
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if CONCRETE.search(line)
    ]
    assert offenders == []


def test_each_broker_takes_only_its_own_fields() -> None:
    accounts = parse_accounts(
        {"p": {"funds": 5}, "d": {}, "k": {"broker": "kite", "api_key": "k1", "api_secret": "s1"}}
    )
    assert [a.broker for a in accounts.values()] == ["paper", "paper", "kite"]
    for raw, named in (
        ({"x": {"broker": "bank"}}, ("'x'", "broker", "bank")),
        ({"x": {"fund": 1}}, ("'x'", "fund")),
        ({"x": {"broker": "paper", "api_key": "k"}}, ("'x'", "api_key")),  # a kite field on a paper account
        ({"x": {"broker": "kite", "funds": 1, "api_key": "k"}}, ("'x'", "funds")),
        ({"x": {"broker": "kite"}}, ("'x'", "api_key")),
        ({"x": {"fail_rate": 2}}, ("'x'", "fail_rate")),
        ({"x y": {}}, ("'x y'",)),
    ):
        with pytest.raises(AccountError) as caught:
            parse_accounts(raw)
        message = str(caught.value)
        assert "\n" not in message and all(word in message for word in named), message


def test_every_broker_the_settings_know_has_a_factory() -> None:
    check_supported(parse_accounts({"p": {}, "k": {"broker": "kite", "api_key": "k1"}}))


@pytest.mark.parametrize(
    ("accounts", "named"),
    [
        ('{"desk": {"fund": 1}}', ("desk", "fund")),
        ('{"desk": {"broker": "bank"}}', ("desk", "bank")),
        ('{"desk": {"broker": "kite"}}', ("desk", "api_key")),
    ],
)
def test_serve_stops_with_one_line_naming_the_account_and_the_field(
    accounts: str, named: tuple[str, ...], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(TICKER_ACCOUNTS=accounts, TICKER_DATA_DIR=str(tmp_path), PORT="0")
    done = subprocess.run(
        [sys.executable, "-m", "ticker_service", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert all(word in lines[0] for word in named), lines[0]
    assert not (tmp_path / "pg").exists()  # refused before anything started
