"""Kite's errors, one row of the table in `brokers/kite/errors.py` per test case."""

from __future__ import annotations

import time

import pytest
import requests
from kiteconnect import exceptions as kite
from urllib3.exceptions import NewConnectionError, ProtocolError

from ticker_service.brokers.base import (
    BrokerAmbiguous,
    BrokerAuthError,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    OrderNotFound,
)
from ticker_service.brokers.kite.errors import BrokerThrottled, change_error, is_network_failure, read_error
from ticker_service.brokers.kite.limits import TurnMissed, check_turn, send_by
from ticker_service.orders.lifecycle.broker_call import outcome_of_error
from ticker_service.orders.lifecycle.outcome import OutcomeKind as K


def refused() -> requests.exceptions.ConnectionError:
    cause = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(cause)


def dropped() -> requests.exceptions.ConnectionError:
    cause = ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    return requests.exceptions.ConnectionError(cause)


CHANGES: list[tuple[BaseException, type[BrokerError], K]] = [
    (kite.TokenException("Incorrect `api_key` or `access_token`."), BrokerAuthError, K.AUTH),
    (kite.PermissionException("Insufficient permission for that call."), BrokerRejected, K.REJECTED),
    (kite.InputException("Invalid `tradingsymbol`."), BrokerRejected, K.REJECTED),
    (kite.OrderException("Insufficient funds. Required margin is 95417.84"), BrokerRejected, K.REJECTED),
    (kite.NetworkException("Too many requests", code=429), BrokerThrottled, K.BEFORE_SEND),
    (kite.NetworkException("Gateway timed out", code=504), BrokerAmbiguous, K.AMBIGUOUS),
    (kite.GeneralException("Something went wrong"), BrokerAmbiguous, K.AMBIGUOUS),
    (kite.DataException("Couldn't parse the JSON response"), BrokerAmbiguous, K.AMBIGUOUS),
    (refused(), BrokerUnavailable, K.BEFORE_SEND),
    (requests.exceptions.ConnectTimeout("connect timed out"), BrokerUnavailable, K.BEFORE_SEND),
    (requests.exceptions.ReadTimeout("read timed out"), BrokerAmbiguous, K.AMBIGUOUS),
    (dropped(), BrokerAmbiguous, K.AMBIGUOUS),
    (ValueError("a bug"), BrokerAmbiguous, K.AMBIGUOUS),
]


@pytest.mark.parametrize(("raised", "error", "kind"), CHANGES, ids=lambda v: type(v).__name__)
def test_a_failed_change_maps_to_one_error_and_one_outcome(
    raised: BaseException, error: type[BrokerError], kind: K
) -> None:
    mapped = change_error(raised)
    assert type(mapped) is error
    assert outcome_of_error(mapped).kind == kind


def test_a_permission_refusal_says_plainly_that_orders_come_only_from_the_registered_ip() -> None:
    mapped = change_error(kite.PermissionException("You are not allowed to place orders from this IP."))
    text = str(mapped)
    assert "static IP" in text and "SEBI" in text and "developer console" in text
    assert "You are not allowed to place orders from this IP." in text  # Kite's own words kept


@pytest.mark.parametrize(
    ("raised", "error"),
    [
        (kite.TokenException("expired"), BrokerAuthError),
        (kite.InputException("Couldn't find that order."), OrderNotFound),
        (kite.NetworkException("Too many requests", code=429), BrokerThrottled),
        (kite.GeneralException("oops"), BrokerUnavailable),
        (requests.exceptions.ReadTimeout("slow"), BrokerUnavailable),
        (refused(), BrokerUnavailable),
    ],
)
def test_a_failed_read_is_never_ambiguous(raised: BaseException, error: type[BrokerError]) -> None:
    assert type(read_error(raised)) is error


def test_only_network_failures_count_toward_the_breaker() -> None:
    assert is_network_failure(change_error(refused()))
    assert is_network_failure(change_error(requests.exceptions.ReadTimeout("slow")))
    assert not is_network_failure(change_error(kite.NetworkException("Too many requests", code=429)))
    assert not is_network_failure(change_error(kite.OrderException("RMS")))
    assert not is_network_failure(change_error(kite.TokenException("expired")))


def test_a_turn_gone_stale_is_given_up_before_the_request_leaves() -> None:
    """A request that could not leave within its rate-limit turn must not arrive bunched with later ones."""
    token = send_by.set(None)
    try:
        check_turn()  # no turn taken (a read): nothing to check
        send_by.set(time.monotonic() + 60)
        check_turn()  # within its turn
        send_by.set(time.monotonic() - 0.001)
        with pytest.raises(TurnMissed) as missed:
            check_turn()
        assert outcome_of_error(missed.value).kind == K.BEFORE_SEND  # not sent: it takes a new turn
    finally:
        send_by.reset(token)
