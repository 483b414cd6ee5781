"""Rate limits per API key, shared by every instance: one ring per (key, limit), its grants.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rate_limit_rings",
        sa.Column("api_key", sa.Text, primary_key=True),
        sa.Column("limit_name", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("last_at", TZ),
        sa.Column("trimmed_at", TZ),
        sa.Column("idle_after", TZ),
    )
    op.create_index("ix_rate_limit_rings_idle", "rate_limit_rings", ["idle_after"])
    op.create_table(
        "rate_limit_grants",
        sa.Column("api_key", sa.Text, primary_key=True),
        sa.Column("limit_name", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key", "limit_name"],
            ["rate_limit_rings.api_key", "rate_limit_rings.limit_name"],
            name="fk_rate_limit_grants_ring",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_rate_limit_grants_at", "rate_limit_grants", ["api_key", "limit_name", "at", "seq"])


def downgrade() -> None:
    op.drop_table("rate_limit_grants")
    op.drop_table("rate_limit_rings")
