"""The application factory. Wiring only: each layer lives in its own module."""

from __future__ import annotations

from quart import Quart

from pulseplan import auth
from pulseplan import observability
from pulseplan import wiring
from pulseplan.auth.guard import AGENTS_EXTENSION
from pulseplan.errors import ConfigurationError
from pulseplan.observability.logs import configure_logging
from pulseplan.plugins import PluginHost
from pulseplan.routes import agent
from pulseplan.routes import common
from pulseplan.routes import health
from pulseplan.routes import oauth
from pulseplan.routes import providers
from pulseplan.routes import tokens
from pulseplan.runtime import Runtime
from pulseplan.settings import Settings
from pulseplan.web import docs
from pulseplan.web import errors
from pulseplan.web import ratelimit
from pulseplan.web import request_id
from pulseplan.web import security


def create_app(settings: Settings | None = None, *, plugins: PluginHost | None = None) -> Quart:
    """Build a PulsePlan app.

    :param settings: configuration; loaded from the environment and ``.env`` when omitted.
    :param plugins: a prepared plugin host (tests); discovered from entry points when omitted.
    :raises ConfigurationError: unsafe or inconsistent settings, or an unconfigured provider in
        production.
    :raises PluginError: a plugin failed to load or breaks the contract.
    """
    settings = settings or Settings.load()
    configure_logging(settings)
    settings.require_valid()
    host = plugins or PluginHost(settings)
    if settings.production and host.problems():
        raise ConfigurationError(host.problems())

    app = Quart("pulseplan", static_folder="static", static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024)
    runtime = Runtime(settings=settings, plugins=host)
    wiring.build(runtime)
    app.extensions["pulseplan"] = runtime
    app.extensions[AGENTS_EXTENSION] = runtime.storage  # the storage layer is the AgentStore

    request_id.init_app(app)
    observability.init_app(app)  # access log, metrics, Sentry: the request timer goes first
    errors.init_app(app)
    docs.init_app(app)
    auth.init_app(app)
    security.init_app(app)  # before ratelimit: CORS preflights and size checks come first
    ratelimit.init_app(app)
    common.init_app(app)
    for blueprint in (
        health.blueprint,
        providers.blueprint,
        tokens.blueprint,
        oauth.blueprint,
        agent.blueprint,
    ):
        app.register_blueprint(blueprint)

    app.before_serving(runtime.start)
    app.after_serving(runtime.stop)
    return app
