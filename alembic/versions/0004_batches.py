"""Batches: the batch record; leg and rollback tasks are order tasks with a batch role.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("order_tasks", sa.Column("batch_role", sa.Text))
    op.create_index("ix_order_tasks_batch", "order_tasks", ["batch_id", "batch_index"])
    op.create_table(
        "batches",
        sa.Column("batch_id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("rollback_on_failure", sa.Boolean, nullable=False),
        sa.Column("rollback_mode", sa.Text, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("failed_index", sa.Integer),
        sa.Column("failure", sa.Text),
        sa.Column("rollback", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("completed_at", TZ),
        sa.UniqueConstraint("account_id", "idempotency_key", name="uq_batches_account_idempotency"),
    )


def downgrade() -> None:
    op.drop_table("batches")
    op.drop_index("ix_order_tasks_batch", table_name="order_tasks")
    op.drop_column("order_tasks", "batch_role")
