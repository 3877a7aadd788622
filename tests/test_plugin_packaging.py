"""Each plugin installs and is discovered on its own: its wheel and the host's wheel go into a
fresh virtualenv, and ``pulseplan providers`` there lists exactly that plugin, with its version.
The tutorial's example, installed the same way, passes its conformance suite.

Wheels are built with ``uv build`` (hatchling comes from the uv cache or PyPI) and installed
with ``uv pip install``, which resolves the host's dependencies from the uv cache; the host
wheel is built once per module. Each plugin gets its own virtualenv, so nothing else installed
can make a plugin look discoverable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
UV = Path(sys.executable).parent / "uv"
EXAMPLE = ROOT / "docs" / "plugins" / "example"
PLUGINS = {
    "google": ROOT / "plugins" / "google",
    "microsoft": ROOT / "plugins" / "microsoft",
    "canvas": ROOT / "plugins" / "canvas",
    "notion": ROOT / "plugins" / "notion",
    "example": EXAMPLE,
}


def run(
    args: list[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, (
        f"{args[:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def uv_env() -> dict[str, str]:
    """The caller's environment (uv cache, proxy CA bundle) minus the active virtualenv."""
    return {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    }


def build_wheel(project: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    run([UV, "build", "--wheel", "--no-progress", "--out-dir", out, project], env=uv_env())
    name = tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"]
    (wheel,) = out.glob(f"{name.replace('-', '_')}-*.whl")
    return wheel


def fresh_venv(where: Path, *wheels: Path, extra: tuple[str, ...] = ()) -> Path:
    venv = where / "venv"
    run([UV, "venv", "--no-progress", "--python", sys.executable, venv], env=uv_env())
    python = venv / "bin" / "python"
    run([UV, "pip", "install", "--no-progress", "--python", python, *wheels, *extra], env=uv_env())
    return venv


def hermetic_env(home: Path, venv: Path) -> dict[str, str]:
    """Nothing from the developer's environment: no PULSEPLAN_*, no provider settings."""
    return {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


@pytest.fixture(scope="module")
def host_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(ROOT, tmp_path_factory.mktemp("host-wheel"))


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_plugin_installs_alone_and_is_listed(name: str, host_wheel: Path, tmp_path: Path) -> None:
    project = PLUGINS[name]
    expected = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    venv = fresh_venv(tmp_path, host_wheel, build_wheel(project, tmp_path / "wheels"))
    # cwd and HOME in tmp_path: the development secrets and any .env stay out of the repo.
    output = run(
        [venv / "bin" / "pulseplan", "providers"], cwd=tmp_path, env=hermetic_env(tmp_path, venv)
    )
    header, *rows = [line.split() for line in output.strip().splitlines()]
    assert header[:3] == ["NAME", "PACKAGE", "VERSION"]
    assert rows == [[name, expected["name"], expected["version"], "yes", "no"]]


def test_installed_tutorial_example_passes_its_conformance_suite(
    host_wheel: Path, tmp_path: Path
) -> None:
    pins = tuple(f"{dist}=={version(dist)}" for dist in ("pytest", "pytest-asyncio"))
    venv = fresh_venv(tmp_path, host_wheel, build_wheel(EXAMPLE, tmp_path / "wheels"), extra=pins)
    env = hermetic_env(tmp_path, venv)
    located = run(
        [venv / "bin" / "python", "-c", "import pulseplan_example as m; print(m.__file__)"],
        cwd=tmp_path,
        env=env,
    )
    assert str(venv) in located, "the example must come from the installed wheel"
    # The tests and the pytest settings only, not the source: the import is the installed one.
    work = tmp_path / "run"
    shutil.copytree(EXAMPLE / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLE / "pyproject.toml", work / "pyproject.toml")
    output = run(
        [venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=work,
        env=env,
    )
    assert " passed" in output
    assert "failed" not in output
