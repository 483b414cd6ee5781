"""Broker sessions (encrypted access tokens), one-time login nonces, account pauses and feed states.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "broker_sessions",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("access_token", sa.Text, nullable=False),  # Fernet-encrypted, never in clear
        sa.Column("token_digest", sa.Text, nullable=False),  # sha256 of the token: compare without decrypting
        sa.Column("user_id", sa.Text),
        sa.Column("source", sa.Text, nullable=False),  # api | login
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "login_nonces",
        sa.Column("nonce", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("used_at", TZ),
    )
    op.create_table(
        "account_pauses",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("reason", sa.Text, primary_key=True),
        sa.Column("detail", sa.Text),
        sa.Column("token_digest", sa.Text),  # token_expired: which token failed
        sa.Column("since", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("probe_at", TZ),  # breaker_open: when to try a cheap read
        sa.CheckConstraint(
            "reason IN ('not_logged_in', 'token_expired', 'breaker_open')", name="ck_account_pauses_reason"
        ),
    )
    op.create_table(
        "account_feeds",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("instance_id", sa.Text),
        sa.Column("reconnects", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("last_frame_at", TZ),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    for table in ("account_feeds", "account_pauses", "login_nonces", "broker_sessions"):
        op.drop_table(table)
