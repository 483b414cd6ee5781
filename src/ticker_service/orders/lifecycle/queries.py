"""Every statement that writes `order_tasks`, and the executor's reads of it.

Intake, claim, lease renewal, finish, requeue, the lease sweeper, batch legs and clean-up all write
here, so "what can change a task, and how" has one answer. State names come from `states`
(rendered, never typed by hand); the events that go with a change are appended by the outbox's
one builder (`append_ctes`) or by `append_events`.

The statements run on the raw asyncpg pool: each is prepared once per connection, and the hot
ones (intake, claim) are single statements, so a task costs few round trips.
"""

from __future__ import annotations

from ticker_service.orders.lifecycle.events import task_status_sql
from ticker_service.orders.lifecycle.states import (
    BATCH_FINAL,
    CLAIMABLE,
    FINISHED,
    BatchRole,
    BatchStatus,
    Operation,
    TaskStatus,
    sql_in,
    sql_is,
    sql_values,
)
from ticker_service.outbox.channels import TASK_DONE_CHANNEL, TASKS_CHANNEL, notify_sql
from ticker_service.outbox.writer import append_ctes, appended_notify

S = TaskStatus
_LEG = f"'{BatchRole.LEG.value}'"

# ---- intake ------------------------------------------------------------------------------------

# One statement: the task, its `pending` event with the account's next seq, and the NOTIFYs. Run
# outside a transaction block it is its own transaction: when it returns, both are committed. The
# NOTIFY on `ticker_tasks` names the instance that wrote the task ($13): it wakes its own workers
# directly, and other instances' workers by this.
INTAKE = f"""
WITH t AS (
    INSERT INTO order_tasks (task_id, idempotency_key, request_hash, operation, params, status,
                             attempts, max_attempts, created_at, updated_at, account_id, broker_tag,
                             order_id, next_attempt_at, expires_in, deadline_at)
    VALUES ($1, $2, $3, $4, $5::jsonb, {sql_is(S.PENDING)}, 0, $6, now(), now(), $7, $8, $9, now(),
            $10::numeric, now() + make_interval(secs => $10::float8))
    ON CONFLICT (account_id, idempotency_key) DO NOTHING
    RETURNING *
), {
    append_ctes(
        gate="t",
        source="t",
        count="1",
        i="1",
        account="t.account_id",
        event_id="$11::text",
        event="'task_status'",
        task_id="t.task_id",
        order_id="t.order_id",
        data="$12::jsonb",
    )
}
SELECT t.*, {notify_sql(TASKS_CHANNEL, "$13::text")} AS claimable, {appended_notify()} AS notified FROM t
"""
BY_KEY = "SELECT * FROM order_tasks WHERE account_id = $1 AND idempotency_key = $2"
BY_ID = "SELECT * FROM order_tasks WHERE task_id = $1"
ACCOUNT_OF_TASK = "SELECT account_id FROM order_tasks WHERE task_id = $1"
# Modifications of an order that took effect or may still (Kite allows 25 per order)
MODIFICATIONS = f"""
SELECT count(*) FROM order_tasks
WHERE account_id = $1 AND order_id = $2 AND operation = '{Operation.MODIFY.value}'
  AND status NOT IN {sql_in({S.REJECTED, S.FAILED, S.DEAD_LETTER, S.SKIPPED})}
"""

# ---- claim -------------------------------------------------------------------------------------

# A task of a paused account (token expired, breaker open: `accounts.pauses`) waits: it is not
# claimed, unless it was never sent and its deadline passed (then the claim fails it).
_NOT_PAUSED = f"""(NOT EXISTS (SELECT 1 FROM account_pauses AS p WHERE p.account_id = order_tasks.account_id)
           OR (order_tasks.deadline_at <= now() AND order_tasks.status <> {sql_is(S.UNKNOWN)}))"""
NEXT_DUE = f"""
SELECT EXTRACT(EPOCH FROM (min(next_attempt_at) - now())) FROM order_tasks
WHERE status IN {sql_in(CLAIMABLE)} AND {_NOT_PAUSED}
"""
# A claimed task starts its next attempt unless it is `unknown` (reconciled instead) or past its
# deadline (never sent: it fails).
_STARTS = f"t.status <> {sql_is(S.UNKNOWN)} AND t.deadline_at > now()"
# One statement: lock the next due task, take its lease and, when it starts an attempt, mark it
# `running` with its `task_status` event.
CLAIM = f"""
WITH c AS (
    SELECT task_id FROM order_tasks
    WHERE status IN {sql_in(CLAIMABLE)} AND next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
      AND {_NOT_PAUSED}
    ORDER BY next_attempt_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), u AS (
    UPDATE order_tasks AS t SET
        status = CASE WHEN {_STARTS} THEN {sql_is(S.RUNNING)} ELSE t.status END,
        attempts = CASE WHEN {_STARTS} THEN t.attempts + 1 ELSE t.attempts END,
        updated_at = CASE WHEN {_STARTS} THEN now() ELSE t.updated_at END,
        lease_owner = $1,
        lease_expires_at = now() + make_interval(secs => $2)
    FROM c WHERE t.task_id = c.task_id
    RETURNING t.*
), {
    append_ctes(
        gate=f"(SELECT * FROM u WHERE u.status = {sql_is(S.RUNNING)}) AS u",
        source=f"(SELECT * FROM u WHERE u.status = {sql_is(S.RUNNING)}) AS u",
        count="1",
        i="1",
        account="u.account_id",
        event_id="$3::text",
        event="'task_status'",
        task_id="u.task_id",
        order_id="u.order_id",
        data=task_status_sql("u", sql_is(S.RUNNING), worker="$1::text"),
    )
}
SELECT u.*, now() AS claimed_now, {appended_notify()} AS notified FROM u
"""
RENEW = """
UPDATE order_tasks SET lease_expires_at = now() + make_interval(secs => $4)
WHERE task_id = $1 AND lease_owner = $2 AND attempts = $3
RETURNING task_id
"""
SECONDS_UNKNOWN = "SELECT EXTRACT(EPOCH FROM now() - unknown_since) FROM order_tasks WHERE task_id = $1"

# ---- finish (fenced) ----------------------------------------------------------------------------

# Every finish statement is fenced: it applies only while the task is still as it was claimed, under
# this worker's lease and attempt ($2 status, $3 owner, $4 attempts); otherwise it changes nothing.
_FENCE = "task_id = $1 AND status = $2 AND lease_owner = $3 AND attempts = $4"
# A state the task leaves again: lease released, due again after $7 seconds
_SET_STATE = f"""
UPDATE order_tasks SET status = $5, last_error = $6, next_attempt_at = now() + make_interval(secs => $7),
    lease_owner = NULL, lease_expires_at = NULL, updated_at = now(), attempts = attempts - $9,
    unknown_since = CASE $8 WHEN 'set' THEN now() WHEN 'clear' THEN NULL ELSE unknown_since END
WHERE {_FENCE}
RETURNING *
"""
_SET_FINAL = f"""
UPDATE order_tasks SET status = $5, last_error = $6, order_id = COALESCE($7, order_id),
    result = COALESCE($8::jsonb, result), lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
    unknown_since = NULL
WHERE {_FENCE}
RETURNING *
"""


def _events_of_u(count: str, events: str) -> str:
    """The events of a finish, after the task's update `u`: `count` of them as a JSON list."""
    return append_ctes(
        gate="u",
        source=f"jsonb_to_recordset({events}::text::jsonb) "
        "AS e(i int, event_id text, event text, task_id text, order_id text, data jsonb)",
        count=f"{count}::int",
        i="e.i",
        account="u.account_id",
        event_id="e.event_id",
        event="e.event",
        task_id="e.task_id",
        order_id="e.order_id",
        data="e.data",
    )


# One statement, its own transaction: the fenced update, its events and the NOTIFYs (no row: fenced off)
FINISH_STATE = f"""
WITH u AS ({_SET_STATE}), {_events_of_u("$10", "$11")}
SELECT u.*, {appended_notify()} AS notified,
    CASE WHEN $12 THEN {notify_sql(TASKS_CHANNEL)} END AS woke
FROM u
"""
FINISH_FINAL = f"""
WITH u AS ({_SET_FINAL}), {_events_of_u("$9", "$10")}
SELECT u.*, {appended_notify()} AS notified, {notify_sql(TASK_DONE_CHANNEL, "u.task_id")} AS done FROM u
"""
# The first statement of a finish that writes more (the order mirror, a batch's next step) in its
# transaction: the task's final state, fenced, with the NOTIFY that wakes waiting requests
SET_FINAL_IN_TRANSACTION = f"""
WITH u AS ({_SET_FINAL})
SELECT u.*, {notify_sql(TASK_DONE_CHANNEL, "u.task_id")} AS done FROM u
"""
# Reconciliation could not reach the broker: the task stays `unknown` and is looked at again later
STILL_UNKNOWN = f"""
UPDATE order_tasks SET lease_owner = NULL, lease_expires_at = NULL, last_error = $5,
    next_attempt_at = now() + make_interval(secs => $6), updated_at = now()
WHERE {_FENCE}
RETURNING *
"""
WAKE_WORKERS = f"SELECT {notify_sql(TASKS_CHANNEL)}"

# ---- operator ----------------------------------------------------------------------------------

LOCK_STATUS = "SELECT status FROM order_tasks WHERE task_id = $1 FOR UPDATE"
REQUEUE = f"""
UPDATE order_tasks SET status = {sql_is(S.PENDING)}, attempts = 0, next_attempt_at = now(),
    deadline_at = now() + make_interval(secs => expires_in::float8), updated_at = now(), last_error = NULL
WHERE task_id = $1
RETURNING *
"""

# ---- the lease sweeper -------------------------------------------------------------------------

EXPIRED_LEASE = f"""
SELECT * FROM order_tasks WHERE status = {sql_is(S.RUNNING)} AND lease_expires_at < now()
ORDER BY lease_expires_at LIMIT 1 FOR UPDATE SKIP LOCKED
"""
LEASE_TO_UNKNOWN = f"""
UPDATE order_tasks SET status = {sql_is(S.UNKNOWN)}, lease_owner = NULL, lease_expires_at = NULL,
    unknown_since = now(), next_attempt_at = now() + make_interval(secs => $2), last_error = $3, updated_at = now()
WHERE task_id = $1
"""

# ---- batches: legs, promotion, skipping and rollback tasks -------------------------------------

INSERT_LEGS = f"""
INSERT INTO order_tasks (task_id, idempotency_key, request_hash, operation, params, status, attempts, max_attempts,
    created_at, updated_at, account_id, broker_tag, next_attempt_at, expires_in, deadline_at,
    batch_id, batch_index, batch_role)
SELECT l.task_id, l.task_id, $1, '{Operation.PLACE.value}', l.params::jsonb,
    CASE WHEN l.i = 0 THEN {sql_is(S.PENDING)} ELSE {sql_is(S.WAITING)} END, 0, $2, now(), now(), $3, l.tag, now(),
    $4::numeric, now() + make_interval(secs => $4::float8), $5, l.i, {_LEG}
FROM unnest($6::text[], $7::text[], $8::text[], $9::int[]) AS l(task_id, params, tag, i)
RETURNING *
"""
PROMOTE_LEG = f"""
UPDATE order_tasks SET status = {sql_is(S.PENDING)}, next_attempt_at = now(), updated_at = now(),
    deadline_at = now() + make_interval(secs => expires_in::float8)
WHERE batch_id = $1 AND batch_role = {_LEG} AND batch_index = $2 AND status = {sql_is(S.WAITING)}
RETURNING *, {notify_sql(TASKS_CHANNEL)} AS notified
"""
SKIP_LEGS = f"""
UPDATE order_tasks SET status = {sql_is(S.SKIPPED)}, updated_at = now(), last_error = $2
WHERE batch_id = $1 AND batch_role = {_LEG} AND status = {sql_is(S.WAITING)}
RETURNING *
"""
INSERT_BATCH_TASK = f"""
INSERT INTO order_tasks (task_id, idempotency_key, request_hash, operation, params, status, attempts, max_attempts,
    created_at, updated_at, account_id, broker_tag, order_id, next_attempt_at, expires_in, deadline_at,
    batch_id, batch_index, batch_role)
VALUES ($1, $1, '', $2, $3::jsonb, {sql_is(S.PENDING)}, 0, $4, now(), now(), $5, $6, $7, now(), $8::numeric,
    now() + make_interval(secs => $8::float8), $9, $10, $11)
RETURNING *
"""

# ---- clean-up (SQLAlchemy text, bound :cutoff) -------------------------------------------------

# A batch's tasks go with the batch, once it is final and old: its record stays whole until then
CLEANUP_TASKS = f"""
DELETE FROM order_tasks AS t
WHERE t.status IN {sql_in(FINISHED)} AND t.updated_at < :cutoff
  AND (t.batch_id IS NULL OR EXISTS (
        SELECT 1 FROM batches AS b WHERE b.batch_id = t.batch_id
          AND b.status IN {sql_values(s for s in BatchStatus if s in BATCH_FINAL)} AND b.completed_at < :cutoff))
"""

# ---- reads for health --------------------------------------------------------------------------

COUNT_BY_STATUS = "SELECT status, count(*) FROM order_tasks GROUP BY status"
# The age of the oldest task due and not yet picked up: how far behind the workers are
EXECUTOR_LAG = f"""
SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(next_attempt_at)), 0) FROM order_tasks
WHERE status IN {sql_in(CLAIMABLE - {S.UNKNOWN})} AND next_attempt_at <= now() AND {_NOT_PAUSED}
"""
