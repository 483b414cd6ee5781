"""Brokers behind one protocol: the paper broker and Kite Connect."""
