"""Paper broker: running exposure per account, instrument and product.

The funds check aggregated the account's whole trade history and open book on every placement, so
its cost grew with the book. This table keeps the same three numbers (net filled quantity, open
buy and open sell quantity) up to date in the paper broker's own transactions; the upgrade fills
it from the existing book.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "paper_exposure",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("exchange", sa.Text, primary_key=True),
        sa.Column("tradingsymbol", sa.Text, primary_key=True),
        sa.Column("product", sa.Text, primary_key=True),
        sa.Column("net_quantity", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("open_buy", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("open_sell", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    op.execute(
        """
        INSERT INTO paper_exposure (account_id, exchange, tradingsymbol, product, net_quantity, open_buy, open_sell)
        SELECT account_id, exchange, tradingsymbol, product, sum(net), sum(buys), sum(sells)
        FROM (
            SELECT account_id, exchange, tradingsymbol, product,
                   CASE WHEN transaction_type = 'BUY' THEN quantity ELSE -quantity END AS net, 0 AS buys, 0 AS sells
            FROM paper_trades
            UNION ALL
            SELECT account_id, exchange, tradingsymbol, product, 0,
                   CASE WHEN transaction_type = 'BUY' THEN quantity - filled_quantity ELSE 0 END,
                   CASE WHEN transaction_type = 'SELL' THEN quantity - filled_quantity ELSE 0 END
            FROM paper_orders WHERE status IN ('OPEN', 'TRIGGER PENDING')
        ) AS x
        GROUP BY account_id, exchange, tradingsymbol, product
        """
    )


def downgrade() -> None:
    op.drop_table("paper_exposure")
