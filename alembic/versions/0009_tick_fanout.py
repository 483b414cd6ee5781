"""Live ticks: the latest tick per instrument, and each instance's lease of its clients' wants.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29

Both UNLOGGED: ticks are latest-value data and leases are renewed every few seconds, so neither is
worth a WAL write, and a crash that empties them is repaired by the next tick and the next renewal.

* `market_ticks`: the latest packet (Kite's binary layout) of each instrument an account's feed
  carried; read for a client's snapshot when its instance has not seen a tick of the instrument.
* `market_tick_wants`: one row per (instance, account) with the union of what that instance's
  connected tick clients want; ignored once `lease_until` has passed (a dead instance).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE UNLOGGED TABLE market_ticks (
            account_id text NOT NULL,
            instrument_token bigint NOT NULL,
            packet bytea NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (account_id, instrument_token)
        )
        """
    )
    op.execute(
        """
        CREATE UNLOGGED TABLE market_tick_wants (
            instance_id text NOT NULL,
            account_id text NOT NULL,
            tokens bigint[] NOT NULL,
            modes text[] NOT NULL,
            lease_until timestamptz NOT NULL,
            PRIMARY KEY (instance_id, account_id),
            CONSTRAINT ck_market_tick_wants_shape CHECK (cardinality(tokens) = cardinality(modes)),
            CONSTRAINT ck_market_tick_wants_modes CHECK (modes <@ ARRAY['ltp', 'quote', 'full']::text[])
        )
        """
    )
    op.create_index("ix_market_tick_wants_account", "market_tick_wants", ["account_id", "lease_until"])


def downgrade() -> None:
    op.drop_table("market_tick_wants")
    op.drop_table("market_ticks")
