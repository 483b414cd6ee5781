"""Batch orders: legs run in order on the relay; a failed leg rolls the earlier ones back."""
