"""Live ticks: one upstream feed per account, fanned out through PostgreSQL to every instance.

```
feed (Kite ticker connections / paper price model)          one holder per account (advisory lock)
  └─ publisher: latest per instrument ─► UNLOGGED market_ticks + batched NOTIFY ticker_ticks
every instance: hub ─► latest-tick cache ─► per-client conflating slot ─► /ws/ticks (JSON), /ws/kite (binary)
```

A tick travels as the binary packet Kite itself uses (`wire`): compact enough to batch dozens into
one NOTIFY, exactly what `/ws/kite` must send, and a lower mode is a prefix of a higher one, so a
client that asked for less gets a slice of the same bytes.
"""
