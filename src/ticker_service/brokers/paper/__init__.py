"""The paper broker: a simulated exchange with its own book in its own tables."""
