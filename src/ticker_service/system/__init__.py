"""Cross-cutting pieces: errors, auth, health, metrics, request ids."""
