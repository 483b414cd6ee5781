"""Core pipeline: order tasks, order mirror, outbox with per-account seq, paper broker book.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "account_seq",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "order_tasks",
        sa.Column("task_id", sa.Text, primary_key=True),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("operation", sa.Text, nullable=False),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default=sa.text("5")),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("last_error", sa.Text),
        sa.Column("result", JSONB),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("broker_tag", sa.Text, nullable=False, unique=True),
        sa.Column("order_id", sa.Text),
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_expires_at", TZ),
        sa.Column("next_attempt_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("expires_in", sa.Numeric, nullable=False),
        sa.Column("deadline_at", TZ, nullable=False),
        sa.Column("unknown_since", TZ),
        sa.Column("batch_id", sa.Text),
        sa.Column("batch_index", sa.Integer),
        sa.UniqueConstraint("account_id", "idempotency_key", name="uq_order_tasks_account_idempotency"),
    )
    op.create_index(
        "ix_order_tasks_claimable",
        "order_tasks",
        ["next_attempt_at"],
        postgresql_where=sa.text("status IN ('pending', 'retrying', 'unknown')"),
    )
    op.create_index(
        "ix_order_tasks_running_lease",
        "order_tasks",
        ["lease_expires_at"],
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_index("ix_order_tasks_status", "order_tasks", ["status"])
    op.create_index("ix_order_tasks_account_created", "order_tasks", ["account_id", "created_at"])
    op.create_index("ix_order_tasks_order_id", "order_tasks", ["order_id"])

    op.create_table(
        "orders",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("task_id", sa.Text),
        sa.Column("broker_tag", sa.Text),
        sa.Column("client_tag", sa.Text),
        sa.Column("exchange", sa.Text, nullable=False),
        sa.Column("tradingsymbol", sa.Text, nullable=False),
        sa.Column("transaction_type", sa.Text, nullable=False),
        sa.Column("product", sa.Text, nullable=False),
        sa.Column("order_type", sa.Text, nullable=False),
        sa.Column("variety", sa.Text, nullable=False),
        sa.Column("validity", sa.Text, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("price", sa.Numeric, nullable=False),
        sa.Column("trigger_price", sa.Numeric, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("status_message", sa.Text),
        sa.Column("filled_quantity", sa.Integer, nullable=False),
        sa.Column("average_price", sa.Numeric, nullable=False),
        sa.Column("snapshot", JSONB, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_orders_broker_tag", "orders", ["broker_tag"])
    op.create_index("ix_orders_account_status", "orders", ["account_id", "status"])

    op.create_table(
        "outbox_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Text, nullable=False, unique=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("task_id", sa.Text),
        sa.Column("order_id", sa.Text),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("account_id", "seq", name="uq_outbox_events_account_seq"),
    )
    op.create_index("ix_outbox_events_created", "outbox_events", ["created_at"])

    op.create_table(
        "paper_accounts",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.execute("CREATE SEQUENCE paper_order_seq")
    op.create_table(
        "paper_orders",
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, sa.ForeignKey("paper_accounts.account_id"), nullable=False),
        sa.Column("tag", sa.Text),
        sa.Column("exchange", sa.Text, nullable=False),
        sa.Column("tradingsymbol", sa.Text, nullable=False),
        sa.Column("instrument_token", sa.BigInteger, nullable=False),
        sa.Column("transaction_type", sa.Text, nullable=False),
        sa.Column("product", sa.Text, nullable=False),
        sa.Column("order_type", sa.Text, nullable=False),
        sa.Column("variety", sa.Text, nullable=False),
        sa.Column("validity", sa.Text, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("disclosed_quantity", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("price", sa.Numeric, nullable=False),
        sa.Column("trigger_price", sa.Numeric, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("status_message", sa.Text),
        sa.Column("filled_quantity", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("cancelled_quantity", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("average_price", sa.Numeric, nullable=False, server_default=sa.text("0")),
        sa.Column("modified", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("order_timestamp", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("exchange_timestamp", TZ),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_paper_orders_account_tag", "paper_orders", ["account_id", "tag"])
    op.create_index(
        "ix_paper_orders_open",
        "paper_orders",
        ["account_id"],
        postgresql_where=sa.text("status IN ('OPEN', 'TRIGGER PENDING')"),
    )
    op.create_table(
        "paper_trades",
        sa.Column("trade_id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.Text, sa.ForeignKey("paper_orders.order_id"), nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("exchange", sa.Text, nullable=False),
        sa.Column("tradingsymbol", sa.Text, nullable=False),
        sa.Column("instrument_token", sa.BigInteger, nullable=False),
        sa.Column("product", sa.Text, nullable=False),
        sa.Column("transaction_type", sa.Text, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("price", sa.Numeric, nullable=False),
        sa.Column("filled_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_paper_trades_account", "paper_trades", ["account_id", "exchange", "tradingsymbol", "product"])
    op.create_index("ix_paper_trades_order", "paper_trades", ["order_id"])


def downgrade() -> None:
    op.drop_table("paper_trades")
    op.drop_table("paper_orders")
    op.execute("DROP SEQUENCE paper_order_seq")
    op.drop_table("paper_accounts")
    op.drop_table("outbox_events")
    op.drop_table("orders")
    op.drop_table("order_tasks")
    op.drop_table("account_seq")
