"""Zerodha Kite Connect."""
