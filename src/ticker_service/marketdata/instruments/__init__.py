"""Instruments per account: the rolled paper list, Kite's daily dump kept in PostgreSQL, one catalogue."""
