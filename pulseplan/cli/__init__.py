"""The ``pulseplan`` command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any
from typing import TypeVar

import click
from pydantic import ValidationError

from pulseplan import __version__
from pulseplan.errors import ConfigurationError
from pulseplan.errors import PluginError
from pulseplan.storage.base import StorageError

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn configuration and plugin errors into one clear line each and exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigurationError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            sys.exit(1)
        except PluginError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except ValidationError as exc:
            # Field and reason only: the rejected input may be a secret.
            for error in exc.errors(include_input=False, include_url=False):
                name = ".".join(str(part) for part in error["loc"]).upper() or "settings"
                click.echo(f"error: {name}: {error['msg']}", err=True)
            sys.exit(1)
        except StorageError as exc:
            click.echo(f"error: storage: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pulseplan")
def main() -> None:
    """PulsePlan: OAuth token vault and provider-integration framework."""


def _register() -> None:
    from pulseplan.cli import agents
    from pulseplan.cli import check
    from pulseplan.cli import dev
    from pulseplan.cli import keys
    from pulseplan.cli import ops
    from pulseplan.cli import providers
    from pulseplan.cli import rotate
    from pulseplan.cli import seed_import
    from pulseplan.cli import serve

    main.add_command(serve.serve)
    main.add_command(providers.providers)
    main.add_command(check.check)
    main.add_command(dev.dev_token)
    main.add_command(ops.migrate)
    main.add_command(ops.refresh)
    main.add_command(agents.agents)
    keys.keys.add_command(rotate.rotate)
    keys.keys.add_command(rotate.import_legacy)
    main.add_command(keys.keys)
    main.add_command(seed_import.import_seed_command)


_register()
