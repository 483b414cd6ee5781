"""The WebSocket order stream: `/advanced/ws/orders/{account_id}` and `/advanced/ws/stats`.

Each process tails the outbox by (account, seq) once per account that has sockets, and fans each
event out to its own sockets; a socket joining with `?since=` first reads what it missed from the
database itself. PostgreSQL is the only source of what a socket receives (invariant 4), so every
instance delivers the same ordered, gap-free stream whichever instance committed the event.
"""
