"""Logs, metrics and error reporting."""
