"""Market data: the brokers' instrument dumps, stored candles and what they cover, subscriptions.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

* `instrument_dumps` / `instruments`: a Kite account's instrument dump (tens of thousands of rows),
  fetched once a day by one process and read by every instance, so no instance asks Kite again.
* `candles` / `candle_ranges`: candles of closed periods as a broker served them, and the time
  ranges whose candles are all stored, so a range asked twice reads no broker window twice.
* `market_subscriptions`: the instruments (and mode) an account's tick stream follows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "market_subscriptions",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("instrument_token", sa.BigInteger, primary_key=True),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("mode IN ('ltp', 'quote', 'full')", name="ck_market_subscriptions_mode"),
    )
    op.create_table(
        "instrument_dumps",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("fetched_at", TZ, nullable=False),
        sa.Column("instrument_count", sa.Integer, nullable=False),
    )
    op.create_table(
        "instruments",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("instrument_token", sa.BigInteger, primary_key=True),
        sa.Column("exchange_token", sa.BigInteger, nullable=False),
        sa.Column("tradingsymbol", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("last_price", sa.Numeric, nullable=False, server_default=sa.text("0")),
        sa.Column("expiry", sa.Date),
        sa.Column("strike", sa.Numeric, nullable=False, server_default=sa.text("0")),
        sa.Column("tick_size", sa.Numeric, nullable=False),
        sa.Column("lot_size", sa.Integer, nullable=False),
        sa.Column("instrument_type", sa.Text, nullable=False),
        sa.Column("segment", sa.Text, nullable=False),
        sa.Column("exchange", sa.Text, nullable=False),
    )
    op.create_index("ix_instruments_symbol", "instruments", ["account_id", "exchange", "tradingsymbol"])
    op.create_index("ix_instruments_name", "instruments", ["account_id", "name", "expiry"])
    op.create_table(
        "candles",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("instrument_token", sa.BigInteger, primary_key=True),
        sa.Column("interval", sa.Text, primary_key=True),
        sa.Column("continuous", sa.Boolean, primary_key=True),
        sa.Column("ts", TZ, primary_key=True),
        sa.Column("open", sa.Float, nullable=False),
        sa.Column("high", sa.Float, nullable=False),
        sa.Column("low", sa.Float, nullable=False),
        sa.Column("close", sa.Float, nullable=False),
        sa.Column("volume", sa.BigInteger, nullable=False),
        sa.Column("oi", sa.BigInteger),
    )
    op.create_table(
        "candle_ranges",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("instrument_token", sa.BigInteger, primary_key=True),
        sa.Column("interval", sa.Text, primary_key=True),
        sa.Column("continuous", sa.Boolean, primary_key=True),
        sa.Column("from_ts", TZ, primary_key=True),
        sa.Column("to_ts", TZ, nullable=False),
        sa.CheckConstraint("from_ts < to_ts", name="ck_candle_ranges_order"),
    )


def downgrade() -> None:
    op.drop_table("candle_ranges")
    op.drop_table("candles")
    op.drop_index("ix_instruments_name", table_name="instruments")
    op.drop_index("ix_instruments_symbol", table_name="instruments")
    op.drop_table("instruments")
    op.drop_table("instrument_dumps")
    op.drop_table("market_subscriptions")
