"""Minute candles built from live ticks by the process holding an account's feed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29

* `tick_candles`: one row per (account, instrument, minute) the account's feed carried ticks in,
  written by the feed's holder at most once a second (one statement for every instrument that
  ticked), read by every instance's `/history` for the minutes the broker's history does not have
  yet (Kite's historical API lags the live market) and for the forming candle.

A regular (logged) table, not UNLOGGED like `market_ticks`: for as long as the broker's history
lags (and for the minutes it never serves, such as a simulated account's ticks outside NSE's
session) these rows are the only record of those minutes, and the write rate is bounded by the
holder's batching (one row per instrument per second at most). The volume is kept as the day's
cumulative volume before and at the end of the minute, so a holder that takes over mid-minute
merges into the row rather than restarting it. Rows older than a few days are purged by the holder.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE tick_candles (
            account_id text NOT NULL,
            instrument_token bigint NOT NULL,
            ts timestamptz NOT NULL,
            open float8 NOT NULL,
            high float8 NOT NULL,
            low float8 NOT NULL,
            close float8 NOT NULL,
            volume_from bigint,
            volume_to bigint,
            oi bigint,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (account_id, instrument_token, ts),
            CONSTRAINT ck_tick_candles_range CHECK (low <= high)
        )
        """
    )
    op.create_index("ix_tick_candles_ts", "tick_candles", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_tick_candles_ts", table_name="tick_candles")
    op.drop_table("tick_candles")
