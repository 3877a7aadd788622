#!/usr/bin/env python3
"""One-command developer tasks. Needs only Python 3.11+ and access to PyPI.

    python3 tasks.py serve [pulseplan serve options]   # set up, then serve on the embedded default
    python3 tasks.py test  [pytest options]            # set up, then lint, type-check and test all
    python3 tasks.py lint                              # ruff + mypy only
    python3 tasks.py setup                             # only (re)build the environment

Set-up creates ``.tools`` (a pinned uv) and ``.venv`` (the host and every plugin installed
editable from ``uv.lock``), and redoes it only when ``pyproject.toml`` files or the lock change.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"
VENV = ROOT / ".venv"
UV_VERSION = "0.13.9"
STAMP = VENV / ".pulseplan-sync"


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def bin_path(env_dir: Path, name: str) -> Path:
    return env_dir / ("Scripts" if os.name == "nt" else "bin") / name


def fingerprint() -> str:
    digest = hashlib.sha256(UV_VERSION.encode())
    for path in sorted(
        [ROOT / "uv.lock", *ROOT.glob("pyproject.toml"), *ROOT.glob("plugins/*/pyproject.toml")]
    ):
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def setup() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"PulsePlan needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    uv = bin_path(TOOLS, "uv")
    if not uv.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
        run(bin_path(TOOLS, "python"), "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}")
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(VENV),
        "UV_PYTHON": sys.executable,
        "UV_PYTHON_DOWNLOADS": "never",
    }
    run(uv, "sync", "--all-packages", "--locked", env=env)
    STAMP.write_text(wanted)


def lint() -> None:
    run(bin_path(VENV, "ruff"), "check", ".")
    run(bin_path(VENV, "ruff"), "format", "--check", ".")
    run(bin_path(VENV, "mypy"))


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in {"serve", "test", "lint", "setup"}:
        sys.exit(__doc__)
    task, rest = argv[0], argv[1:]
    setup()
    if task == "serve":
        os.execv(bin_path(VENV, "pulseplan"), ["pulseplan", "serve", *rest])
    if task == "lint":
        lint()
    if task == "test":
        lint()
        run(bin_path(VENV, "python"), "-m", "pytest", *rest)


if __name__ == "__main__":
    main(sys.argv[1:])
