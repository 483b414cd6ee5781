"""Market data beside the order flow: instruments (`instruments/`), historical candles (`history/`),
subscriptions (`subscriptions/`) and live ticks (`ticks/`).

Ticks are lossy, latest-value data with no seq, never through the outbox: `subscriptions/` decides
which instruments an account's one upstream feed carries, `ticks/` moves the ticks from that feed to
every instance's WebSocket clients through PostgreSQL. Every part finds instruments through the one
`InstrumentCatalogue`, so every part of the service agrees on what a token means.
"""
