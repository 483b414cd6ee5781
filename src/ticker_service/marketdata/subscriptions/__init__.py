"""Which instruments an account's upstream feed carries, and in which mode.

Two sources of wants, both in PostgreSQL so that every instance and the feed's holder agree:
the account's stored list (`market_subscriptions`, from `POST /subscriptions`, alive across
restarts) and each instance's lease row of what its connected clients want (`market_tick_wants`,
unlogged, renewed while they are connected, ignored once it runs out). The upstream subscription of
an instrument is their union at the highest mode anyone asked for.
"""
