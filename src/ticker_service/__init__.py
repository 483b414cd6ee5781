"""Ticker Service: a crash-safe order gateway in front of Kite Connect and a paper broker."""

__version__ = "0.1.0"
