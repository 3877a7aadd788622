"""``pulseplan agents``: credentials for AI agents that fetch users' tokens."""

from __future__ import annotations

import asyncio

import click

from pulseplan.auth.agents import agent_pepper
from pulseplan.auth.agents import create_agent
from pulseplan.auth.agents import normalize_name
from pulseplan.cli import reports_errors
from pulseplan.cli.context import opened_runtime
from pulseplan.cli.providers import table
from pulseplan.errors import ApiError


@click.group()
def agents() -> None:
    """Create, list and revoke agent credentials."""


@agents.command()
@click.argument("name")
@click.option(
    "--providers",
    default=None,
    help="Comma-separated providers the agent may read (default: all).",
)
@reports_errors
def create(name: str, providers: str | None) -> None:
    """Create an agent and print its secret. The secret is shown once and never stored."""

    async def run() -> tuple[str, str]:
        async with opened_runtime() as runtime:
            pepper = agent_pepper(runtime.settings)
            allowed = None if providers is None else providers.split(",")
            record, secret = await create_agent(
                runtime.storage, name, allowed, pepper, known_providers=runtime.plugins.providers
            )
            return record.name, secret

    try:
        agent_name, secret = asyncio.run(run())
    except ApiError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"created agent {agent_name}; its secret (shown only now):", err=True)
    click.echo(secret)


@agents.command(name="list")
@reports_errors
def list_agents() -> None:
    """List agents (never their secrets)."""

    async def run() -> list[list[str]]:
        async with opened_runtime() as runtime:
            return [
                [
                    a.name,
                    a.id,
                    ",".join(a.providers) if a.providers is not None else "all",
                    a.created_at.strftime("%Y-%m-%d %H:%M"),
                    a.revoked_at.strftime("%Y-%m-%d %H:%M") if a.revoked_at else "-",
                ]
                for a in await runtime.storage.list_agents()
            ]

    rows = asyncio.run(run())
    click.echo(table([["NAME", "ID", "PROVIDERS", "CREATED", "REVOKED"], *rows]))


@agents.command()
@click.argument("name")
@reports_errors
def revoke(name: str) -> None:
    """Revoke an agent; its secret stops working at once."""
    try:
        stored = normalize_name(name)  # the name as ``create`` stored it (lower case)
    except ApiError as exc:
        raise click.ClickException(exc.detail) from None

    async def run() -> bool:
        async with opened_runtime() as runtime:
            return await runtime.storage.revoke_agent(stored)

    if not asyncio.run(run()):
        raise click.ClickException(f"no active agent named {stored!r}")
    click.echo(f"revoked agent {stored}")
