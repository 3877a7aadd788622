"""``plugins/_template`` stays a working plugin once copied and renamed as its README says."""

from __future__ import annotations

import importlib.util
import secrets
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import new_user
from pulseplan.testing.vault import running_vault

TEMPLATE = Path(__file__).parents[1] / "plugins" / "_template"
PLACEHOLDER = "myprovider"


def renamed_copy(dest: Path, name: str) -> Path:
    """Copy the template and apply the README's renames for provider ``name``."""
    root = dest / f"pulseplan-{name}"
    shutil.copytree(TEMPLATE, root, ignore=shutil.ignore_patterns("__pycache__"))
    # Deepest paths first, so a renamed directory never invalidates a path still to visit.
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file():
            text = path.read_text()
            text = text.replace(PLACEHOLDER, name).replace(PLACEHOLDER.upper(), name.upper())
            path.write_text(text.replace("My Provider", name.title()))
        if PLACEHOLDER in path.name:
            path.rename(path.with_name(path.name.replace(PLACEHOLDER, name)))
    return root


@pytest.fixture
def renamed(tmp_path: Path) -> tuple[str, Path]:
    name = f"tpl{secrets.token_hex(3)}"
    return name, renamed_copy(tmp_path, name)


@pytest.fixture
def imported(renamed: tuple[str, Path]) -> Iterator[ModuleType]:
    """The renamed plugin package, imported from the copy (and forgotten afterwards)."""
    name, root = renamed
    module_name = f"pulseplan_{name}"
    init = root / module_name / "__init__.py"
    spec = importlib.util.spec_from_file_location(module_name, init)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(module_name, None)


def test_the_rename_leaves_no_placeholder(renamed: tuple[str, Path]) -> None:
    name, root = renamed
    left = [
        p.relative_to(root)
        for p in root.rglob("*")
        if PLACEHOLDER in p.name.lower() or (p.is_file() and PLACEHOLDER in p.read_text().lower())
    ]
    assert left == []
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["name"] == f"pulseplan-{name}"
    assert project["entry-points"]["pulseplan"] == {name: f"pulseplan_{name}"}
    conformance = (root / "tests" / "test_conformance.py").read_text()
    compile(conformance, "test_conformance.py", "exec")
    assert f'provider = "{name}"' in conformance


async def test_the_renamed_plugin_registers_and_runs_the_lifecycle(
    renamed: tuple[str, Path], imported: ModuleType, tmp_path: Path
) -> None:
    name, _ = renamed
    async with running_vault(
        tmp_path / "vault", providers={name: FakeProvider("standard")}, plugins=[(name, imported)]
    ) as vault:
        info = vault.runtime.plugins.info(name)
        assert info.enabled
        assert info.configured
        assert vault.runtime.plugins.spec(name).display_name == name.title()
        user = new_user()
        await vault.connect(user, name)
        forced = await vault.client.post(
            f"/api/v1/tokens/connections/{name}/refresh", headers=vault.headers(user)
        )
        assert forced.status_code == 200
        assert vault.fakes[name].count("refresh", ok=True) == 1
        assert (await vault.disconnect(user, name)).status_code == 200


@pytest.mark.slow
def test_the_renamed_template_passes_its_own_tests(renamed: tuple[str, Path]) -> None:
    """The copy's own pytest run: its pyproject's pytest settings, its conftest, its tests."""
    _, root = renamed
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
