"""`/health`'s answer for each view: one word without the metrics key, accounts only to who may see them."""

from __future__ import annotations

from ticker_service.accounts.states import AccountState
from ticker_service.orders.lifecycle.states import TaskStatus
from ticker_service.system.health import down_body, health_body
from ticker_service.system.operator_view import EVERYTHING, SUMMARY, OperatorView
from ticker_service.system.samples import Sample


def sample(**states: AccountState) -> Sample:
    return Sample(
        tasks={s.value: 0 for s in TaskStatus},
        lag_seconds=0.0,
        deliveries={},
        endpoints_disabled=0,
        outbox_backlog=0,
        outbox_oldest_seconds=0.0,
        accounts={a: (s, None if s == AccountState.ACTIVE else "why") for a, s in states.items()},
        feeds={},
        latency_ms=1.0,
    )


def body(s: Sample, view: OperatorView) -> dict[str, object]:
    return health_body(s, view, relay_running=True, workers=1, instance_id="i")


def test_the_summary_is_one_word_with_the_status_a_load_balancer_reads() -> None:
    assert body(sample(a=AccountState.ACTIVE), SUMMARY) == {"status": "ok"}
    assert body(sample(a=AccountState.TOKEN_EXPIRED), SUMMARY) == {"status": "degraded"}
    assert down_body(SUMMARY, error="E", reason="r", relay_running=True, instance_id="i") == {"status": "down"}
    assert down_body(EVERYTHING, error="E", reason="r", relay_running=True, instance_id="i")["status"] == "down"


def test_problems_of_hidden_accounts_are_counted_never_named() -> None:
    s = sample(mine=AccountState.ACTIVE, theirs=AccountState.BREAKER_OPEN)
    shown = body(s, OperatorView(detailed=True, accounts=frozenset({"mine"})))
    assert shown["status"] == "degraded" and set(shown["accounts"]) == {"mine"}  # type: ignore[arg-type]
    assert "theirs" not in str(shown)
    assert shown["problems"] == ["1 problem(s) of accounts this caller may not see"]
    assert "theirs" in str(body(s, EVERYTHING))
