"""The paper exchange's MARKET orders fill against its visible book, in parts over the next ticks.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

* `paper_orders.book_bucket`: the second (of the paper book, `brokers/paper/depth.py`) whose visible
  depth an order last filled against. An order larger than the visible book keeps the rest open and
  takes the next second's book, never the same book twice; NULL for orders that never filled that way.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("paper_orders", sa.Column("book_bucket", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("paper_orders", "book_bucket")
