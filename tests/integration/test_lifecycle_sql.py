"""The project's SQL against the migrated schema: every statement prepares, task states are checked by
the database exactly as the code spells them, and the claim's event is the one the Python builds."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import asyncpg
import pytest

import ticker_service
from tests.conftest import SPEC_ORDER, make_client
from ticker_service.orders.lifecycle import queries
from ticker_service.orders.lifecycle.events import task_status_data
from ticker_service.orders.lifecycle.states import BatchRole, BatchStatus, Operation, TaskStatus

SQL = re.compile(r"^\s*(WITH|SELECT|INSERT|UPDATE|DELETE)\s+\S")  # a statement, not a lone word
NAMED = re.compile(r"(?<![:\w]):([a-z_]+)\b")  # SQLAlchemy's :name, not a ::cast
TEMPLATE = re.compile(r"\{[a-z_]+\}")  # a str.format template, prepared once rendered
SRC = Path(ticker_service.__file__).parent
# what runs a statement given inline (asyncpg, and SQLAlchemy's text())
RUNNERS = {"fetch", "fetchrow", "fetchval", "execute", "executemany", "prepare", "text"}


def _module_statements() -> dict[str, str]:
    """Every module-level string (or dict of strings) that is a statement, f-strings rendered."""
    found: dict[str, str] = {}
    for info in pkgutil.walk_packages(ticker_service.__path__, "ticker_service."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            values = value.items() if isinstance(value, dict) else [("", value)]
            for key, item in values:
                if isinstance(item, str) and SQL.match(item):
                    found[f"{info.name}.{name}{'.' + str(key) if key else ''}"] = item
    return found


def _inline_statements() -> dict[str, str]:
    """Statements written inline as the argument of a call (`conn.fetch("SELECT ...")`), from the source."""
    found: dict[str, str] = {}
    for path in SRC.rglob("*.py"):
        for call in ast.walk(ast.parse(path.read_text())):
            if not isinstance(call, ast.Call):
                continue
            func = call.func
            if (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")) not in RUNNERS:
                continue
            for node in call.args:
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
                    found[f"{path.relative_to(SRC)}:{node.lineno}"] = node.value
    return found


def _no_sql_built_inside_functions() -> list[str]:
    """An f-string statement inside a function could not be prepared here: they must be constants."""
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.JoinedStr) and node.values:
                    first = node.values[0]
                    if isinstance(first, ast.Constant) and isinstance(first.value, str) and SQL.match(first.value):
                        offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    return offenders


def _as_asyncpg(sql: str) -> str:
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return NAMED.sub(number, sql)


async def test_every_statement_of_the_project_prepares_against_the_migrated_schema(database_url: str) -> None:
    statements = _module_statements() | _inline_statements()
    assert len(statements) > 60, sorted(statements)  # the collector itself works
    assert _no_sql_built_inside_functions() == []
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    failures = {}
    prepared = 0
    try:
        for where, sql in sorted(statements.items()):
            if TEMPLATE.search(sql):
                continue  # a template (the paper broker's upsert): its rendered forms are constants too
            try:
                async with conn.transaction():
                    await conn.prepare(_as_asyncpg(sql))
                prepared += 1
            except asyncpg.PostgresError as exc:
                failures[where] = f"{type(exc).__name__}: {exc}"
    finally:
        await conn.close()
    assert failures == {}
    assert prepared > 60


async def test_the_check_constraints_are_the_states_the_code_knows(db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid IN ('order_tasks'::regclass, 'batches'::regclass) AND contype = 'c'"
    )
    defs = {r["conname"]: r["def"] for r in rows}
    for name, enum in (
        ("ck_order_tasks_status", TaskStatus),
        ("ck_order_tasks_operation", Operation),
        ("ck_order_tasks_batch_role", BatchRole),
        ("ck_batches_status", BatchStatus),
    ):
        assert set(re.findall(r"'([a-z_]+)'::text", defs[name])) == {v.value for v in enum}, name


async def test_the_database_refuses_a_state_that_does_not_exist(database_url: str, db: asyncpg.Connection) -> None:
    async with make_client(database_url, TICKER_RELAY_WORKERS="0") as c:
        task_id = (await c.post("/orders/place?wait=0", json=SPEC_ORDER)).json()["task_id"]
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("UPDATE order_tasks SET status = 'done' WHERE task_id = $1", task_id)
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("UPDATE order_tasks SET operation = 'place' WHERE task_id = $1", task_id)


async def test_the_claims_running_event_is_the_payload_python_builds(database_url: str, db: asyncpg.Connection) -> None:
    async with make_client(database_url, TICKER_RELAY_WORKERS="0") as c:
        task_id = (await c.post("/orders/place?wait=0", json=SPEC_ORDER)).json()["task_id"]
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        claimed = await pool.fetchrow(queries.CLAIM, "worker-1", 5.0, "event-1")
    finally:
        await pool.close()
    assert claimed is not None and claimed["status"] == "running" and claimed["attempts"] == 1
    event = await db.fetchrow("SELECT event, data FROM outbox_events WHERE event_id = 'event-1'")
    expected = {"event": "task_status", **task_status_data(dict(claimed), TaskStatus.RUNNING, worker="worker-1")}
    assert event["event"] == "task_status" and event["data"] == expected
    seqs = [r["seq"] for r in await db.fetch("SELECT seq FROM outbox_events WHERE task_id = $1 ORDER BY seq", task_id)]
    assert seqs == [1, 2]  # intake's pending, then the claim's running: gap-free
