"""Historical candles: paper candles from the price model, Kite's in windows kept in PostgreSQL."""
