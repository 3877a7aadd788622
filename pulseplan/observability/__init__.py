"""Logs, metrics and error reporting.

:func:`init_app` wires everything into an app; ``logs.configure_logging`` (called first by
``create_app``) sets up the log pipeline. Other layers call the small API in
:mod:`pulseplan.observability.metrics`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quart import Quart


def init_app(app: Quart) -> None:
    """Sentry (when ``SENTRY_DSN`` is set), request logging and metrics, ``/metrics`` (unless
    ``METRICS_ENABLED=false``), and the provider-call metrics plugin.

    Needs ``app.extensions["pulseplan"]`` (the runtime) to exist.
    """
    # Imported here: this package is imported by low layers (locks, cache) for the metrics API,
    # and the web modules below import those layers back.
    from pulseplan.observability import access
    from pulseplan.observability import endpoint
    from pulseplan.observability import sentry
    from pulseplan.observability.hooks import PLUGIN_NAME
    from pulseplan.observability.hooks import ObservabilityPlugin

    runtime = app.extensions["pulseplan"]
    sentry.init_sentry(runtime.settings)
    access.init_app(app)
    pm = runtime.plugins.pm
    if pm.get_plugin(PLUGIN_NAME) is None:
        pm.register(ObservabilityPlugin(), name=PLUGIN_NAME)
    if runtime.settings.metrics_enabled:
        endpoint.init_app(app)
