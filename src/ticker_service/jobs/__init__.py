"""Background jobs: lease sweeping, reconciliation, the paper matcher, clean-up."""
