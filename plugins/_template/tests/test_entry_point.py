"""The packaging metadata points PulsePlan at this plugin under the right name."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pulseplan_myprovider

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"


def test_entry_point_names_the_provider_and_its_module() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    entry_points = project["entry-points"]["pulseplan"]
    assert entry_points == {"myprovider": "pulseplan_myprovider"}
    assert pulseplan_myprovider.describe_provider().name == "myprovider"
