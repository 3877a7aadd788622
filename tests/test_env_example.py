""".env.example and docs/operations.md document every setting the server reads: each field of
:class:`~pulseplan.settings.Settings`, the ``pulseplan serve`` environment options, and every
installed provider's settings (``{NAME}_CLIENT_ID``... and the plugin's own)."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from pulseplan.provider import ProviderSpec
from pulseplan.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PROCESS_ENV = ("PULSEPLAN_HOST", "PULSEPLAN_PORT", "PULSEPLAN_WORKERS", "PROMETHEUS_MULTIPROC_DIR")
PROVIDER_SUFFIXES = ("CLIENT_ID", "CLIENT_SECRET", "SCOPES")


def provider_specs() -> list[ProviderSpec]:
    specs = []
    for entry in entry_points(group="pulseplan"):
        module = entry.load()
        specs.append(module.describe_provider())
    return specs


def every_setting() -> list[str]:
    names = [name.upper() for name in Settings.model_fields]
    names += PROCESS_ENV
    for spec in provider_specs():
        names += [f"{spec.name.upper()}_{suffix}" for suffix in PROVIDER_SUFFIXES]
        names += [setting.env for setting in spec.settings]
    return sorted(set(names))


def test_the_installed_providers_are_found() -> None:
    assert {"google", "microsoft", "canvas", "notion"} <= {s.name for s in provider_specs()}


@pytest.mark.parametrize("name", every_setting())
def test_env_example_has_a_line_for(name: str) -> None:
    text = (ROOT / ".env.example").read_text()
    assert re.search(rf"^# {name}=", text, re.M), f"no '# {name}=...' line in .env.example"


@pytest.mark.parametrize("name", every_setting())
def test_the_operations_guide_mentions(name: str) -> None:
    assert f"`{name}`" in (ROOT / "docs" / "operations.md").read_text()


def test_env_example_lines_are_all_commented_out() -> None:
    # Copying the file as-is must not set anything (a placeholder secret least of all).
    for line in (ROOT / ".env.example").read_text().splitlines():
        assert not line.strip() or line.startswith("#"), line


def test_env_example_names_are_settings_the_app_reads() -> None:
    known = set(every_setting()) | {"NAME"}
    text = (ROOT / ".env.example").read_text()
    for name in re.findall(r"^# ([A-Z][A-Z0-9_]+)=", text, re.M):
        assert name in known, f".env.example documents {name}, which nothing reads"


def test_the_partial_examples_were_merged() -> None:
    assert not list(ROOT.glob(".env.example.*")), "one .env.example documents everything"
