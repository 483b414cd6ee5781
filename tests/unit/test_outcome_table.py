"""The outcome table, row by row, and the scripted broker driving it: no database, well under a second.

Every decision is also checked against the allowed transitions of `states`, so a row that moved a
task somewhere it may not go fails here before it could reach the SQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.scripted_broker import ScriptedBroker
from ticker_service.brokers.base import (
    BrokerAmbiguous,
    BrokerAuthError,
    BrokerDeadline,
    BrokerOrder,
    BrokerRejected,
    BrokerUnavailable,
    OrderNotFound,
    PlaceResult,
)
from ticker_service.orders.lifecycle.broker_call import call_broker, outcome_of_error, place_params
from ticker_service.orders.lifecycle.outcome import Decision, Outcome, OutcomeKind, TaskFacts, Timing, decide
from ticker_service.orders.lifecycle.reconcile import reconcile
from ticker_service.orders.lifecycle.states import RESOLVED, TRANSITIONS, Operation, TaskStatus, allowed

K = OutcomeKind
S = TaskStatus
TIMING = Timing(backoff=0.7, grace=2.0, recheck=0.4)
ORDER = BrokerOrder(
    order_id="O1",
    status="COMPLETE",
    exchange="NFO",
    tradingsymbol="NIFTY25NOVFUT",
    transaction_type="BUY",
    product="NRML",
    order_type="MARKET",
    quantity=50,
    filled_quantity=50,
)


def facts(
    status: TaskStatus = S.RUNNING,
    operation: Operation = Operation.PLACE,
    attempts: int = 1,
    max_attempts: int = 5,
    past_deadline: bool = False,
) -> TaskFacts:
    order_id = None if operation == Operation.PLACE else "O1"
    return TaskFacts(operation, status, attempts, max_attempts, order_id=order_id, past_deadline=past_deadline)


def checked(task: TaskFacts, outcome: Outcome) -> Decision:
    decision = decide(task, outcome, TIMING)
    assert allowed(task.status, decision.status), (task.status, decision.status)
    assert decision.final == (decision.status in RESOLVED)
    assert decision.final == (decision.retry_in is None), "a state the task leaves again needs a due time"
    return decision


# ---- every row ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.RUNNING, S.UNKNOWN])
def test_placed_completes_and_records_the_order_with_task_status_first(status: TaskStatus) -> None:
    d = checked(facts(status), Outcome(K.PLACED, order_id="O1", order=ORDER))
    assert d.status == S.COMPLETED and d.order_id == "O1"
    assert d.result == {"order_id": "O1", "order_status": "COMPLETE"}
    assert d.record_order is ORDER and d.link_order and d.status_event_first and d.failure_event is None


def test_placed_without_a_snapshot_still_completes_with_the_id() -> None:
    d = checked(facts(), Outcome(K.PLACED, order_id="O9"))
    assert d.status == S.COMPLETED and d.result == {"order_id": "O9"} and d.record_order is None


@pytest.mark.parametrize("operation", [Operation.MODIFY, Operation.CANCEL])
def test_a_modification_or_cancellation_done_completes_without_relinking_the_order(operation: Operation) -> None:
    d = checked(facts(operation=operation), Outcome(K.DONE, order_id="O1", order=ORDER))
    assert d.status == S.COMPLETED and d.order_id == "O1" and d.record_order is ORDER and not d.link_order


def test_a_rejected_placement_is_rejected_with_order_rejected() -> None:
    d = checked(facts(), Outcome(K.REJECTED, "Insufficient funds"))
    assert (d.status, d.error, d.failure_event) == (S.REJECTED, "Insufficient funds", "order_rejected")
    assert d.record_order is None and not d.status_event_first


@pytest.mark.parametrize("operation", [Operation.MODIFY, Operation.CANCEL])
def test_a_refused_change_records_the_order_as_it_is(operation: Operation) -> None:
    d = checked(facts(operation=operation), Outcome(K.REJECTED, "Order cannot be cancelled", order=ORDER))
    assert d.status == S.REJECTED and d.failure_event is None
    assert d.result == {"order_id": "O1", "order_status": "COMPLETE"} and d.record_order is ORDER
    bare = checked(facts(operation=operation), Outcome(K.REJECTED, "no"))
    assert bare.result is None and bare.record_order is None


@pytest.mark.parametrize("status", [S.PENDING, S.RETRYING, S.RUNNING])
def test_expired_fails_a_task_that_was_never_sent(status: TaskStatus) -> None:
    d = checked(facts(status), Outcome(K.EXPIRED, "deadline passed"))
    assert (d.status, d.error, d.failure_event) == (S.FAILED, "deadline passed", "order_failed")


def test_a_refused_session_token_waits_without_spending_the_attempt() -> None:
    """Kite refused the token: nothing was sent; the account pauses and the task waits for a session."""
    d = checked(facts(attempts=5), Outcome(K.AUTH, "Invalid access_token"))
    assert d.status == S.RETRYING and d.give_back_attempt and d.failure_event is None and d.alarm == "auth"
    assert "Invalid access_token" in (d.error or "") and d.retry_in == TIMING.backoff


def test_no_turn_under_the_rate_limits_before_the_deadline_fails_it_never_sent() -> None:
    d = checked(facts(S.RUNNING), Outcome(K.EXPIRED, "not sent: orders 10 per second"))
    assert (d.status, d.failure_event) == (S.FAILED, "order_failed")


def test_before_send_retries_after_the_backoff_while_attempts_remain() -> None:
    d = checked(facts(attempts=4), Outcome(K.BEFORE_SEND, "connection refused"))
    assert (d.status, d.retry_in, d.error) == (S.RETRYING, 0.7, "connection refused")
    assert d.status_extra == {"retry_in": 0.7} and d.failure_event is None


def test_before_send_dead_letters_at_the_last_attempt() -> None:
    d = checked(facts(attempts=5), Outcome(K.BEFORE_SEND, "connection refused"))
    assert d.status == S.DEAD_LETTER and d.failure_event == "order_failed"
    assert d.error == "gave up after 5 attempts; never sent: connection refused"


def test_ambiguous_goes_unknown_until_the_grace_period_and_alarms() -> None:
    d = checked(facts(), Outcome(K.AMBIGUOUS, "timed out"))
    assert (d.status, d.retry_in, d.unknown_since, d.alarm) == (S.UNKNOWN, 2.0, "set", "unknown")
    assert d.error == "outcome unknown: timed out" and d.failure_event is None


def test_not_found_resends_at_once_within_deadline_and_attempts() -> None:
    d = checked(facts(S.UNKNOWN, attempts=2), Outcome(K.NOT_FOUND, "no order with this tag; confirmed not placed"))
    assert (d.status, d.retry_in, d.unknown_since, d.wake_workers) == (S.RETRYING, 0.0, "clear", True)


def test_not_found_past_the_deadline_fails() -> None:
    d = checked(facts(S.UNKNOWN, past_deadline=True), Outcome(K.NOT_FOUND, "x"))
    assert d.status == S.FAILED and d.failure_event == "order_failed" and "deadline" in (d.error or "")


def test_not_found_without_attempts_left_dead_letters() -> None:
    d = checked(facts(S.UNKNOWN, attempts=5), Outcome(K.NOT_FOUND, "x"))
    assert d.status == S.DEAD_LETTER and d.error == "not placed after 5 attempts (confirmed by reconciliation)"


def test_still_unknown_changes_nothing_anyone_is_told_about() -> None:
    d = checked(facts(S.UNKNOWN), Outcome(K.STILL_UNKNOWN, "broker down"))
    assert (d.status, d.status_event, d.retry_in, d.alarm) == (S.UNKNOWN, False, 0.4, "reconcile_failed")


def test_every_outcome_kind_has_a_row() -> None:
    for kind in OutcomeKind:
        status = {K.EXPIRED: S.PENDING, K.NOT_FOUND: S.UNKNOWN, K.STILL_UNKNOWN: S.UNKNOWN}.get(kind, S.RUNNING)
        checked(facts(status), Outcome(kind, "m", order_id="O1", order=ORDER))


def test_final_states_have_no_way_out_but_an_operator_requeue() -> None:
    for status in RESOLVED:
        assert TRANSITIONS[status] == (frozenset({S.PENDING}) if status == S.DEAD_LETTER else frozenset())


# ---- exceptions -> outcomes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (BrokerRejected("Invalid price"), K.REJECTED),
        (OrderNotFound("no such order"), K.REJECTED),
        (BrokerUnavailable("refused"), K.BEFORE_SEND),
        (BrokerAuthError("token"), K.AUTH),
        (BrokerAmbiguous("reset"), K.AMBIGUOUS),
        (BrokerDeadline("no turn before the deadline"), K.EXPIRED),
        (TimeoutError(), K.AMBIGUOUS),
        (ValueError("a bug in a broker adapter"), K.AMBIGUOUS),
    ],
)
def test_each_broker_error_maps_to_one_outcome(error: Exception, kind: OutcomeKind) -> None:
    assert outcome_of_error(error).kind == kind


# ---- the scripted broker drives the table ------------------------------------------------------

PARAMS = {
    "exchange": "NFO",
    "tradingsymbol": "NIFTY25NOVFUT",
    "transaction_type": "BUY",
    "quantity": 50,
    "product": "NRML",
    "order_type": "MARKET",
}


async def _never_renewed() -> bool:
    raise AssertionError("a call this short never renews its lease")


async def place(broker: ScriptedBroker, tag: str = "TSTAG1") -> Outcome:
    return await call_broker(
        lambda: broker.place_order(place_params(PARAMS, tag)),
        operation="place_order",
        timeout=0.05,
        renew_after=10.0,
        renew=_never_renewed,
    )


def seconds(value: float | None) -> Callable[[], Awaitable[float | None]]:
    async def waited() -> float | None:
        return value

    return waited


async def reconcile_place(broker: ScriptedBroker, waited: float | None, tag: str = "TSTAG1") -> Outcome:
    task: dict[str, Any] = {"task_id": "t1", "operation": "place_order", "broker_tag": tag, "params": PARAMS}
    return await reconcile(task, broker, timeout=0.05, grace=TIMING.grace, seconds_unknown=seconds(waited))


async def test_scripted_placed_then_rejected_then_refused_before_sending() -> None:
    broker = ScriptedBroker().then("fill").then("refuse", "Invalid `quantity`.").then("unavailable")
    placed = checked(facts(), await place(broker))
    assert placed.status == S.COMPLETED and placed.record_order is not None
    assert placed.record_order.status == "COMPLETE" and placed.record_order.tag == "TSTAG1"
    rejected = checked(facts(), await place(broker, "TSTAG2"))
    assert rejected.status == S.REJECTED and rejected.error == "Invalid `quantity`."
    retry = checked(facts(), await place(broker, "TSTAG3"))
    assert retry.status == S.RETRYING and retry.retry_in == TIMING.backoff
    assert [o.tag for o in broker.book.values()] == ["TSTAG1"]  # only the first ever reached the book


async def test_scripted_lost_answer_is_found_by_tag_and_never_resent() -> None:
    broker = ScriptedBroker().then("lose_answer")
    first = checked(facts(), await place(broker))
    assert first.status == S.UNKNOWN
    found = checked(facts(S.UNKNOWN), await reconcile_place(broker, waited=0.0))
    assert found.status == S.COMPLETED and found.order_id == "SCR000001" and found.link_order
    assert broker.calls == ["place"]


async def test_scripted_ambiguous_timeout_waits_out_the_grace_then_resends() -> None:
    broker = ScriptedBroker().then("hang")
    first = checked(facts(), await place(broker))
    assert first.status == S.UNKNOWN and "timed out" in (first.error or "")
    early = checked(facts(S.UNKNOWN), await reconcile_place(broker, waited=TIMING.grace / 2))
    assert early.status == S.UNKNOWN and not early.status_event  # too soon to trust "not there"
    late = checked(facts(S.UNKNOWN), await reconcile_place(broker, waited=TIMING.grace))
    assert late.status == S.RETRYING and late.wake_workers
    assert broker.book == {}


async def test_scripted_token_expiry_waits_and_nothing_reaches_the_book() -> None:
    broker = ScriptedBroker().then("token_expired")
    d = checked(facts(), await place(broker))
    assert d.status == S.RETRYING and d.give_back_attempt and d.alarm == "auth" and broker.book == {}


async def test_a_broker_that_cannot_be_read_keeps_the_task_unknown() -> None:
    class Unreadable(ScriptedBroker):
        async def orders_by_tag(self, tag: str) -> list[BrokerOrder]:
            raise BrokerUnavailable("down")

    d = checked(facts(S.UNKNOWN), await reconcile_place(Unreadable(), waited=100.0))
    assert d.status == S.UNKNOWN and not d.status_event and "reconciliation failed" in (d.error or "")


async def test_the_scripted_broker_fulfils_the_protocol_used_by_the_executor() -> None:
    broker = ScriptedBroker().then("rest")
    result = await broker.place_order(place_params(PARAMS, "T"))
    assert isinstance(result, PlaceResult) and (await broker.get_order(result.order_id)).status == "OPEN"
    cancelled = await broker.cancel_order(result.order_id)
    assert cancelled.status == "CANCELLED"
    updates = broker.order_updates()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(updates), 0.01)
