"""An account's daily views in Kite's shapes: holdings, margins, an order's trades, quotes."""
