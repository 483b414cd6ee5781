"""Task states, operations, batch roles and batch states checked by the database.

The values are written out here, as they were when this revision was made; the code renders its
statements from `orders.lifecycle.states`, and a test compares those with these constraints.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = (
    "pending",
    "running",
    "retrying",
    "unknown",
    "completed",
    "rejected",
    "failed",
    "dead_letter",
    "waiting",
    "skipped",
)
OPERATIONS = ("place_order", "modify_order", "cancel_order")
BATCH_ROLES = ("leg", "cancel", "square_off")
BATCH_STATUSES = ("running", "rolling_back", "completed", "failed", "rollback_failed")


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_check_constraint("ck_order_tasks_status", "order_tasks", f"status IN {_in(STATUSES)}")
    op.create_check_constraint("ck_order_tasks_operation", "order_tasks", f"operation IN {_in(OPERATIONS)}")
    op.create_check_constraint(
        "ck_order_tasks_batch_role", "order_tasks", f"batch_role IS NULL OR batch_role IN {_in(BATCH_ROLES)}"
    )
    op.create_check_constraint("ck_batches_status", "batches", f"status IN {_in(BATCH_STATUSES)}")


def downgrade() -> None:
    op.drop_constraint("ck_batches_status", "batches", type_="check")
    for name in ("ck_order_tasks_batch_role", "ck_order_tasks_operation", "ck_order_tasks_status"):
        op.drop_constraint(name, "order_tasks", type_="check")
