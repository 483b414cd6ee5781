"""Market data: subscriptions and live ticks, beside the order flow and never through the outbox.

Ticks are lossy, latest-value data with no seq: `subscriptions/` decides which instruments an
account's one upstream feed carries, `ticks/` moves the ticks from that feed to every instance's
WebSocket clients through PostgreSQL.
"""
