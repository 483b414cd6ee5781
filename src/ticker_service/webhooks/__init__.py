"""Webhooks: endpoints, the fan-out of outbox events into deliveries, and the senders."""
