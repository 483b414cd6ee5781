"""The outbox: events written in the same transaction as the change they describe, and the relay."""
