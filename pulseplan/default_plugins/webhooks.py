"""Signed webhooks for connection events (off by default). Implemented with the token broker."""
