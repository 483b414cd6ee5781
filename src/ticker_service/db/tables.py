"""Table definitions (SQLAlchemy Core). Alembic owns the schema; these mirror the migrations.

`tests/integration/test_migrations.py` compares this metadata with the migrated database, so a
migration and these definitions cannot drift apart unnoticed.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from ticker_service.accounts.states import PauseReason
from ticker_service.orders.lifecycle.states import (
    CLAIMABLE,
    BatchRole,
    BatchStatus,
    Operation,
    TaskStatus,
    sql_in,
    sql_is,
    sql_values,
)

metadata = MetaData()

TZ = DateTime(timezone=True)

account_seq = Table(
    "account_seq",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

order_tasks = Table(
    "order_tasks",
    metadata,
    Column("task_id", Text, primary_key=True),
    Column("idempotency_key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("operation", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("max_attempts", Integer, nullable=False, server_default=text("5")),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
    Column("updated_at", TZ, nullable=False, server_default=func.now()),
    Column("last_error", Text),
    Column("result", JSONB),
    Column("account_id", Text, nullable=False),
    Column("broker_tag", Text, nullable=False, unique=True),
    Column("order_id", Text),
    Column("lease_owner", Text),
    Column("lease_expires_at", TZ),
    Column("next_attempt_at", TZ, nullable=False, server_default=func.now()),
    Column("expires_in", Numeric, nullable=False),
    Column("deadline_at", TZ, nullable=False),
    Column("unknown_since", TZ),
    Column("batch_id", Text),
    Column("batch_index", Integer),
    Column("batch_role", Text),  # leg | cancel | square_off (the last two roll a leg back)
    UniqueConstraint("account_id", "idempotency_key", name="uq_order_tasks_account_idempotency"),
    CheckConstraint(f"status IN {sql_values(TaskStatus)}", name="ck_order_tasks_status"),
    CheckConstraint(f"operation IN {sql_values(Operation)}", name="ck_order_tasks_operation"),
    CheckConstraint(f"batch_role IS NULL OR batch_role IN {sql_values(BatchRole)}", name="ck_order_tasks_batch_role"),
    Index("ix_order_tasks_claimable", "next_attempt_at", postgresql_where=text(f"status IN {sql_in(CLAIMABLE)}")),
    Index(
        "ix_order_tasks_running_lease",
        "lease_expires_at",
        postgresql_where=text(f"status = {sql_is(TaskStatus.RUNNING)}"),
    ),
    Index("ix_order_tasks_status", "status"),
    Index("ix_order_tasks_account_created", "account_id", "created_at"),
    Index("ix_order_tasks_order_id", "order_id"),
    Index("ix_order_tasks_batch", "batch_id", "batch_index"),
)

orders = Table(
    "orders",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("order_id", Text, primary_key=True),
    Column("task_id", Text),
    Column("broker_tag", Text),
    Column("client_tag", Text),
    Column("exchange", Text, nullable=False),
    Column("tradingsymbol", Text, nullable=False),
    Column("transaction_type", Text, nullable=False),
    Column("product", Text, nullable=False),
    Column("order_type", Text, nullable=False),
    Column("variety", Text, nullable=False),
    Column("validity", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("price", Numeric, nullable=False),
    Column("trigger_price", Numeric, nullable=False),
    Column("status", Text, nullable=False),
    Column("status_message", Text),
    Column("filled_quantity", Integer, nullable=False),
    Column("average_price", Numeric, nullable=False),
    Column("snapshot", JSONB, nullable=False),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
    Column("updated_at", TZ, nullable=False, server_default=func.now()),
    Index("ix_orders_broker_tag", "broker_tag"),
    Index("ix_orders_account_status", "account_id", "status"),
)

outbox_events = Table(
    "outbox_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", Text, nullable=False, unique=True),
    Column("account_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("event", Text, nullable=False),
    Column("task_id", Text),
    Column("order_id", Text),
    Column("data", JSONB, nullable=False),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
    UniqueConstraint("account_id", "seq", name="uq_outbox_events_account_seq"),
    Index("ix_outbox_events_created", "created_at"),
)

# ---- the paper broker's own book: written only by the paper broker, in its own transactions ----

paper_accounts = Table(
    "paper_accounts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
)

paper_orders = Table(
    "paper_orders",
    metadata,
    Column("order_id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("paper_accounts.account_id"), nullable=False),
    Column("tag", Text),
    Column("exchange", Text, nullable=False),
    Column("tradingsymbol", Text, nullable=False),
    Column("instrument_token", BigInteger, nullable=False),
    Column("transaction_type", Text, nullable=False),
    Column("product", Text, nullable=False),
    Column("order_type", Text, nullable=False),
    Column("variety", Text, nullable=False),
    Column("validity", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("disclosed_quantity", Integer, nullable=False, server_default=text("0")),
    Column("price", Numeric, nullable=False),
    Column("trigger_price", Numeric, nullable=False),
    Column("status", Text, nullable=False),
    Column("status_message", Text),
    Column("filled_quantity", Integer, nullable=False, server_default=text("0")),
    Column("cancelled_quantity", Integer, nullable=False, server_default=text("0")),
    Column("average_price", Numeric, nullable=False, server_default=text("0")),
    Column("modified", Boolean, nullable=False, server_default=text("false")),
    Column("order_timestamp", TZ, nullable=False, server_default=func.now()),
    Column("exchange_timestamp", TZ),
    Column("updated_at", TZ, nullable=False, server_default=func.now()),
    Column("book_bucket", BigInteger),  # the paper book's second a MARKET order last filled against
    Index("ix_paper_orders_account_tag", "account_id", "tag"),
    Index(
        "ix_paper_orders_open",
        "account_id",
        postgresql_where=text("status IN ('OPEN', 'TRIGGER PENDING')"),
    ),
)

paper_trades = Table(
    "paper_trades",
    metadata,
    Column("trade_id", BigInteger, primary_key=True, autoincrement=True),
    Column("order_id", Text, ForeignKey("paper_orders.order_id"), nullable=False),
    Column("account_id", Text, nullable=False),
    Column("exchange", Text, nullable=False),
    Column("tradingsymbol", Text, nullable=False),
    Column("instrument_token", BigInteger, nullable=False),
    Column("product", Text, nullable=False),
    Column("transaction_type", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("price", Numeric, nullable=False),
    Column("filled_at", TZ, nullable=False, server_default=func.now()),
    Index("ix_paper_trades_account", "account_id", "exchange", "tradingsymbol", "product"),
    Index("ix_paper_trades_order", "order_id"),
)

# Running totals per account, instrument and product, kept in the same transaction as every paper
# order change, so the funds check reads a handful of rows instead of the whole book and history.
paper_exposure = Table(
    "paper_exposure",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("exchange", Text, primary_key=True),
    Column("tradingsymbol", Text, primary_key=True),
    Column("product", Text, primary_key=True),
    Column("net_quantity", BigInteger, nullable=False, server_default=text("0")),
    Column("open_buy", BigInteger, nullable=False, server_default=text("0")),
    Column("open_sell", BigInteger, nullable=False, server_default=text("0")),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("webhook_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),
    Column("secret", Text, nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("disabled_reason", Text),
    Column("disabled_at", TZ),
    Column("start_seq", BigInteger, nullable=False),  # events of the account after this seq are delivered
    Column("last_success_at", TZ),
    Column("failing_since", TZ),  # first failure since the last success
    Column("stalled", Integer, nullable=False, server_default=text("0")),  # attempts in a row with no answer
    Column("backoff_until", TZ),  # a stalled endpoint gets no request before this
    Column("created_at", TZ, nullable=False, server_default=func.now()),
    Column("updated_at", TZ, nullable=False, server_default=func.now()),
    Index("ix_webhooks_account", "account_id"),
)

# How far the fan-out has turned each account's events into deliveries.
webhook_cursor = Table(
    "webhook_cursor",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_id", Text, primary_key=True),
    Column("webhook_id", Text, ForeignKey("webhooks.webhook_id", ondelete="CASCADE"), nullable=False),
    Column("event_id", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("seq", BigInteger),
    Column("body", Text, nullable=False),  # the exact bytes sent on every attempt
    Column("status", Text, nullable=False),  # pending | sending | retrying | delivered | dead
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", TZ, nullable=False, server_default=func.now()),
    Column("lease_owner", Text),
    Column("lease_expires_at", TZ),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
    Column("updated_at", TZ, nullable=False, server_default=func.now()),
    Column("delivered_at", TZ),
    UniqueConstraint("event_id", "webhook_id", name="uq_webhook_deliveries_event_webhook"),
    Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status IN ('pending', 'retrying')")),
    Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
    Index("ix_webhook_deliveries_sending", "lease_expires_at", postgresql_where=text("status = 'sending'")),
    Index(
        "ix_webhook_deliveries_queue",
        "webhook_id",
        "next_attempt_at",
        postgresql_where=text("status IN ('pending', 'retrying', 'sending')"),
    ),
)

batches = Table(
    "batches",
    metadata,
    Column("batch_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("rollback_on_failure", Boolean, nullable=False),
    Column("rollback_mode", Text, nullable=False),  # cancel | square_off
    Column("total", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("failed_index", Integer),
    Column("failure", Text),  # the failed leg's message
    Column("rollback", JSONB, nullable=False, server_default=text("'{}'::jsonb")),  # leg index -> outcome
    Column("error", Text),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
    Column("updated_at", TZ, nullable=False, server_default=func.now()),
    Column("completed_at", TZ),
    UniqueConstraint("account_id", "idempotency_key", name="uq_batches_account_idempotency"),
    CheckConstraint(f"status IN {sql_values(BatchStatus)}", name="ck_batches_status"),
)

# ---- accounts: broker sessions, login nonces, pauses and the state of each account's feed ----

broker_sessions = Table(
    "broker_sessions",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("access_token", Text, nullable=False),
    Column("token_digest", Text, nullable=False),
    Column("user_id", Text),
    Column("source", Text, nullable=False),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
)

login_nonces = Table(
    "login_nonces",
    metadata,
    Column("nonce", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
    Column("used_at", TZ),
)

account_pauses = Table(
    "account_pauses",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("reason", Text, primary_key=True),
    Column("detail", Text),
    Column("token_digest", Text),
    Column("since", TZ, nullable=False, server_default=func.now()),
    Column("probe_at", TZ),
    CheckConstraint(f"reason IN {sql_values(PauseReason)}", name="ck_account_pauses_reason"),
)

account_feeds = Table(
    "account_feeds",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("state", Text, nullable=False),
    Column("detail", Text),
    Column("instance_id", Text),
    Column("reconnects", BigInteger, nullable=False, server_default=text("0")),
    Column("last_frame_at", TZ),
    Column("updated_at", TZ, nullable=False, server_default=func.now()),
)

# ---- rate limits per API key (brokers/limits.py): one ring per (key, limit), its recent grants ----

rate_limit_rings = Table(
    "rate_limit_rings",
    metadata,
    Column("api_key", Text, primary_key=True),
    Column("limit_name", Text, primary_key=True),
    Column("seq", BigInteger, nullable=False, server_default=text("0")),  # grants made, cancelled ones taken back
    Column("last_at", TZ),  # the latest grant, a reservation in the future included
    Column("trimmed_at", TZ),  # the latest grant trimmed away: a safe stand-in for any grant no longer kept
    Column("idle_after", TZ),  # from then on no grant of this ring bounds a new one
    Index("ix_rate_limit_rings_idle", "idle_after"),
)

rate_limit_grants = Table(
    "rate_limit_grants",
    metadata,
    Column("api_key", Text, primary_key=True),
    Column("limit_name", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True),  # 1, 2, 3, ... in time order within the ring
    Column("at", TZ, nullable=False),  # the database's clock: when the request may go
    ForeignKeyConstraint(
        ["api_key", "limit_name"],
        ["rate_limit_rings.api_key", "rate_limit_rings.limit_name"],
        name="fk_rate_limit_grants_ring",
        ondelete="CASCADE",
    ),
    Index("ix_rate_limit_grants_at", "api_key", "limit_name", "at", "seq"),
)


# ---- market data (0008) ----------------------------------------------------------------------------

market_subscriptions = Table(
    "market_subscriptions",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("instrument_token", BigInteger, primary_key=True),
    Column("mode", Text, nullable=False),
    Column("created_at", TZ, nullable=False, server_default=text("now()")),
    CheckConstraint("mode IN ('ltp', 'quote', 'full')", name="ck_market_subscriptions_mode"),
)

instrument_dumps = Table(
    "instrument_dumps",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("fetched_at", TZ, nullable=False),  # when the dump now stored was fetched from the broker
    Column("instrument_count", Integer, nullable=False),
)

instruments = Table(
    "instruments",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("instrument_token", BigInteger, primary_key=True),
    Column("exchange_token", BigInteger, nullable=False),
    Column("tradingsymbol", Text, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("last_price", Numeric, nullable=False, server_default=text("0")),
    Column("expiry", Date),
    Column("strike", Numeric, nullable=False, server_default=text("0")),
    Column("tick_size", Numeric, nullable=False),
    Column("lot_size", Integer, nullable=False),
    Column("instrument_type", Text, nullable=False),
    Column("segment", Text, nullable=False),
    Column("exchange", Text, nullable=False),
    Index("ix_instruments_symbol", "account_id", "exchange", "tradingsymbol"),
    Index("ix_instruments_name", "account_id", "name", "expiry"),
)

candles = Table(
    "candles",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("instrument_token", BigInteger, primary_key=True),
    Column("interval", Text, primary_key=True),
    Column("continuous", Boolean, primary_key=True),
    Column("ts", TZ, primary_key=True),  # the candle's start
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("volume", BigInteger, nullable=False),
    Column("oi", BigInteger),
)

candle_ranges = Table(
    "candle_ranges",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("instrument_token", BigInteger, primary_key=True),
    Column("interval", Text, primary_key=True),
    Column("continuous", Boolean, primary_key=True),
    Column("from_ts", TZ, primary_key=True),  # every candle starting in [from_ts, to_ts) is stored
    Column("to_ts", TZ, nullable=False),
    CheckConstraint("from_ts < to_ts", name="ck_candle_ranges_order"),
)

# minute candles built from ticks by the feed's holder (0011); volume_from/to: the day's cumulative volume
tick_candles = Table(
    "tick_candles",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("instrument_token", BigInteger, primary_key=True),
    Column("ts", TZ, primary_key=True),  # the minute
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("volume_from", BigInteger),
    Column("volume_to", BigInteger),
    Column("oi", BigInteger),
    Column("updated_at", TZ, nullable=False, server_default=text("now()")),
    CheckConstraint("low <= high", name="ck_tick_candles_range"),
    Index("ix_tick_candles_ts", "ts"),
)

# ---- live ticks (0009): UNLOGGED, latest-value data and leases ------------------------------------

market_ticks = Table(
    "market_ticks",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("instrument_token", BigInteger, primary_key=True),
    Column("packet", LargeBinary, nullable=False),  # Kite's binary packet of the latest tick
    Column("updated_at", TZ, nullable=False, server_default=text("now()")),
    prefixes=["UNLOGGED"],
)

market_tick_wants = Table(
    "market_tick_wants",
    metadata,
    Column("instance_id", Text, primary_key=True),
    Column("account_id", Text, primary_key=True),
    Column("tokens", ARRAY(BigInteger), nullable=False),
    Column("modes", ARRAY(Text), nullable=False),
    Column("lease_until", TZ, nullable=False),
    CheckConstraint("cardinality(tokens) = cardinality(modes)", name="ck_market_tick_wants_shape"),
    CheckConstraint("modes <@ ARRAY['ltp', 'quote', 'full']::text[]", name="ck_market_tick_wants_modes"),
    Index("ix_market_tick_wants_account", "account_id", "lease_until"),
    prefixes=["UNLOGGED"],
)
