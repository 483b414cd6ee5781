"""The ticker's text messages: order updates keep every field; errors, notices and unknown types."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.kite_frames import postback
from ticker_service.brokers.kite.ticker_messages import (
    ErrorMessage,
    MalformedMessageError,
    Notice,
    OrderUpdate,
    UnknownMessage,
    parse_text_message,
)
from ticker_service.timeutil import IST


def order_message(data: object) -> str:
    return json.dumps({"type": "order", "data": data})


def test_order_message_parses_to_a_typed_update_keeping_every_field() -> None:
    data = {**postback(), "checksum": ""}  # the ticker's order messages come unsigned

    update = parse_text_message(order_message(data))

    assert isinstance(update, OrderUpdate)
    assert update.typed
    assert update.raw == data
    assert (update.order_id, update.status, update.tradingsymbol) == ("220303000308932", "COMPLETE", "SBIN")
    assert (update.quantity, update.filled_quantity, update.average_price) == (1, 1, 470.0)
    assert update.instrument_token == 779521
    assert update.order_timestamp == datetime(2022, 3, 3, 9, 24, 25, tzinfo=IST)
    assert update.exchange_update_timestamp == datetime(2022, 3, 3, 9, 24, 25, tzinfo=IST)
    assert update.meta == {}
    for key, value in data.items():  # every typed field that Kite sent holds Kite's value
        if key not in ("order_timestamp", "exchange_timestamp", "exchange_update_timestamp"):
            assert getattr(update, key) == value, key


def test_fields_we_do_not_know_are_kept_in_raw() -> None:
    data = {**postback(), "auction_number": "12", "some_future_field": {"x": [1, 2]}}

    update = parse_text_message(order_message(data))

    assert isinstance(update, OrderUpdate)
    assert update.raw["some_future_field"] == {"x": [1, 2]}
    assert update.raw == data


def test_an_order_update_with_an_unexpected_field_type_is_still_delivered() -> None:
    data = {**postback(), "quantity": "one lot", "status": "OPEN"}

    update = parse_text_message(order_message(data))

    assert isinstance(update, OrderUpdate)
    assert not update.typed
    assert (update.order_id, update.status) == ("220303000308932", "OPEN")
    assert update.raw == data


def test_an_order_id_sent_as_a_number_is_still_delivered() -> None:
    data = {**postback(), "order_id": 220303000308932}

    update = parse_text_message(order_message(data))

    assert isinstance(update, OrderUpdate)
    assert update.order_id == "220303000308932"


def test_error_and_notice_messages() -> None:
    assert parse_text_message('{"type": "error", "data": "Invalid mode"}') == ErrorMessage(message="Invalid mode")
    assert parse_text_message(b'{"type": "message", "data": "Markets closed"}') == Notice(data="Markets closed")


def test_unknown_types_are_recognised_as_unknown() -> None:
    message = parse_text_message('{"type": "instruments_meta", "data": {"count": 1}}')

    assert message == UnknownMessage(type="instruments_meta", raw={"type": "instruments_meta", "data": {"count": 1}})


@pytest.mark.parametrize(
    "payload",
    ["not json", "[1, 2]", '{"type": "order"}', '{"type": "order", "data": "x"}', order_message({"status": "OPEN"})],
    ids=["not-json", "array", "no-data", "data-not-object", "no-order-id"],
)
def test_malformed_messages_raise_a_specific_error(payload: str) -> None:
    with pytest.raises(MalformedMessageError):
        parse_text_message(payload)
