"""Accounts: broker sessions and their tokens, the login flow, pauses (token expired, circuit breaker)
and what `GET /accounts` shows."""
