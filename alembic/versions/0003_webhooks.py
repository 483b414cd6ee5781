"""Webhooks: endpoints, the fan-out cursor and one delivery row per (event, endpoint).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("webhook_id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", ARRAY(sa.Text), nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("disabled_at", TZ),
        sa.Column("start_seq", sa.BigInteger, nullable=False),
        sa.Column("last_success_at", TZ),
        sa.Column("failing_since", TZ),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_webhooks_account", "webhooks", ["account_id"])
    op.create_table(
        "webhook_cursor",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.Text, primary_key=True),
        sa.Column("webhook_id", sa.Text, sa.ForeignKey("webhooks.webhook_id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_expires_at", TZ),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("delivered_at", TZ),
        sa.UniqueConstraint("event_id", "webhook_id", name="uq_webhook_deliveries_event_webhook"),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status IN ('pending', 'retrying')"),
    )
    op.create_index("ix_webhook_deliveries_webhook", "webhook_deliveries", ["webhook_id", "created_at"])
    op.create_index(
        "ix_webhook_deliveries_sending",
        "webhook_deliveries",
        ["lease_expires_at"],
        postgresql_where=sa.text("status = 'sending'"),
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_cursor")
    op.drop_table("webhooks")
