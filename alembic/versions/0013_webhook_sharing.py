"""Webhook endpoints that stall are backed off; each endpoint's queue has its own index.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

* `webhooks.stalled`: attempts in a row that got no HTTP answer at all (a timeout, a connection that
  failed); any answer, even a 5xx, resets it. While it is above zero the endpoint gets one request at
  a time (a probe), across all instances, instead of a send slot for each delivery that is due.
* `webhooks.backoff_until`: no request goes to the endpoint before this time (set when an attempt
  stalls, from the retry schedule, at most five minutes).
* `ix_webhook_deliveries_queue`: the deliveries of one endpoint by due time (and those being sent),
  so the claim can take the first few of every endpoint instead of the oldest few of all of them,
  which one busy account could fill.

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("webhooks", sa.Column("stalled", sa.Integer, nullable=False, server_default=sa.text("0")))
    op.add_column("webhooks", sa.Column("backoff_until", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_webhook_deliveries_queue",
        "webhook_deliveries",
        ["webhook_id", "next_attempt_at"],
        postgresql_where=sa.text("status IN ('pending', 'retrying', 'sending')"),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_queue", table_name="webhook_deliveries")
    op.drop_column("webhooks", "backoff_until")
    op.drop_column("webhooks", "stalled")
