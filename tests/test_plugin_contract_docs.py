"""The plugin docs cannot drift from the code: every hookspec is documented in
``docs/plugins/hooks.md`` under a heading listing its arguments, with its exact signature, and
has a ``test_hook_<name>`` test; every field of the plugin types and every ``provider.standard``
method is described; the tutorial's code is the example package's code. (datasette's
``test_plugin_hooks_are_documented`` / ``test_plugin_hooks_have_tests``.)"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pluggy
import pytest

from pulseplan import hookspecs
from pulseplan import provider as provider_types
from pulseplan.standard import StandardOAuth2

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs" / "plugins"
HOOKS_MD = (DOCS / "hooks.md").read_text()
HEADING = re.compile(r"^(#{2,4}) (.+?)\s*$", re.MULTILINE)
CALL = re.compile(r"^([\w.]+)\((.*)\)$")
TYPES = (
    provider_types.ProviderSpec,
    provider_types.SettingSpec,
    provider_types.ProviderSettings,
    provider_types.ProviderContext,
    provider_types.TokenSet,
    provider_types.Validation,
    provider_types.Revocation,
    provider_types.ConnectionEvent,
)


def hook_callers() -> dict[str, Any]:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return {name: caller for name, caller in vars(pm.hook).items() if not name.startswith("_")}


HOOKS = hook_callers()


def sections(markdown: str) -> dict[str, str]:
    """Heading text -> the text up to the next heading of any level."""
    found = list(HEADING.finditer(markdown))
    return {
        m.group(2): markdown[m.end() : found[i + 1].start() if i + 1 < len(found) else None]
        for i, m in enumerate(found)
    }


def argument_names(arglist: str) -> list[str]:
    """``"*, code, requested=()"`` -> ``["code", "requested"]`` (markers and defaults dropped)."""
    names = [a.split("=")[0].split(":")[0].strip() for a in arglist.split(",")]
    return [n for n in names if n and n != "*"]


def documented_calls(prefix: str = "") -> dict[str, list[str]]:
    calls = {}
    for heading in sections(HOOKS_MD):
        match = CALL.match(heading)
        if match and match.group(1).startswith(prefix):
            calls[match.group(1).removeprefix(prefix)] = argument_names(match.group(2))
    return calls


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def code_blocks(text: str) -> list[str]:
    """The bodies of every fenced block, whatever the language."""
    return re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL)


def normalised(code: str) -> str:
    text = " ".join(code.split())
    return text.replace("( ", "(").replace(", )", ")")


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hookspec_is_documented_with_its_arguments(hook: str) -> None:
    documented = documented_calls()
    assert hook in documented, f"docs/plugins/hooks.md has no '### {hook}(...)' section"
    assert documented[hook] == list(HOOKS[hook].spec.argnames)


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_documented_signature_is_the_hookspec(hook: str) -> None:
    spec = HOOKS[hook].spec
    heading = f"{hook}({', '.join(spec.argnames)})"
    block = python_blocks(sections(HOOKS_MD)[heading])[0]
    decorator, _, definition = block.strip().partition("\n")
    expected_decorator = "@hookspec(firstresult=True)" if spec.opts["firstresult"] else "@hookspec"
    assert decorator == expected_decorator
    signature = inspect.signature(spec.function)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    assert normalised(definition) == f"def {hook}({params}) -> {signature.return_annotation}:"


def test_no_documented_hook_is_unknown() -> None:
    documented = {name for name in documented_calls() if "." not in name}
    helpers = {
        "classify",
        "parse_error_body",
        "retry_after_seconds",
        "expires_at_from",
        "json_object",
    }
    assert documented - helpers == set(HOOKS)


def test_every_hookspec_has_a_test() -> None:
    tests = {
        node.name
        for path in (ROOT / "tests").rglob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    assert {f"test_hook_{hook}" for hook in HOOKS} - tests == set()


@pytest.mark.parametrize("cls", TYPES, ids=lambda cls: cls.__name__)
def test_every_field_of_the_plugin_types_is_documented(cls: type) -> None:
    section = sections(HOOKS_MD).get(cls.__name__)
    assert section is not None, f"docs/plugins/hooks.md has no '### {cls.__name__}' section"
    missing = [f.name for f in dataclasses.fields(cls) if f"`{f.name}`" not in section]
    assert missing == []


def test_the_provider_errors_are_documented() -> None:
    assert {"ReconnectRequired", "ProviderMisconfigured", "ProviderUnavailable"} <= set(
        sections(HOOKS_MD)
    )


def test_every_standard_method_is_documented_with_its_arguments() -> None:
    documented = documented_calls("provider.standard.")
    public = {
        name: member
        for name, member in inspect.getmembers(StandardOAuth2, inspect.isfunction)
        if not name.startswith("_")
    }
    assert set(documented) == set(public)
    for name, function in public.items():
        params = [
            ("**" if p.kind is p.VAR_KEYWORD else "") + p.name
            for p in inspect.signature(function).parameters.values()
            if p.name != "self"
        ]
        assert documented[name] == params, name


def test_the_tutorial_shows_the_example_package_code() -> None:
    """A tutorial block whose first line is ``# docs/plugins/example/<file>`` is a verbatim
    excerpt of that file (the example is what the tests run)."""
    checked = 0
    for block in code_blocks((DOCS / "tutorial.md").read_text()):
        first, _, body = block.partition("\n")
        if not first.startswith("# docs/plugins/example/"):
            continue
        source = (ROOT / first.removeprefix("# ").strip()).read_text()
        assert body.strip() in source, f"the tutorial's {first[2:]} differs from the file"
        checked += 1
    assert checked >= 3
