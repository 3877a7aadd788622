"""ASGI entry point for Hypercorn workers: ``pulseplan.asgi:app``."""

from pulseplan.app import create_app

app = create_app()
