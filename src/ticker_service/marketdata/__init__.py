"""Market data beside the order flow: instruments (`instruments/`) and historical candles (`history/`).

Ticks and subscriptions live with the tick stream; they find instruments through the one
`InstrumentCatalogue` built here, so every part of the service agrees on what a token means.
"""
