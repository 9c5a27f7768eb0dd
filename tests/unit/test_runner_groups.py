"""Every e2e module that uses a shared runner is in that runner's group (tests/e2e/runner_groups.py).

`make pytest` sends a group's files to one worker as one unit (tests/conftest.py), where the runner
starts once; a module that asks for the shared fixture but is missing from the group lands on some
other worker and starts a second runner there (seconds of CPU each session, nothing fails). Which
fixtures a module's tests reach is read from the source (test parameters, then the fixtures they
name, the module's own fixtures before tests/e2e/conftest.py's), as pytest resolves them.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.e2e.runner_groups import RUNNER_GROUPS

ROOT = Path(__file__).resolve().parents[2]
E2E = ROOT / "tests" / "e2e"


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "fixture"


def _parameters(function: ast.FunctionDef) -> list[str]:
    return [a.arg for a in (*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs)]


def _read(path: Path) -> tuple[dict[str, list[str]], list[list[str]]]:
    """(fixture name -> the fixtures it requests, the requested fixtures of each test) of one file."""
    fixtures: dict[str, list[str]] = {}
    tests: list[list[str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.FunctionDef):
            continue
        if any(_is_fixture(d) for d in node.decorator_list):
            fixtures[node.name] = _parameters(node)
        elif node.name.startswith("test_"):
            tests.append(_parameters(node))
    return fixtures, tests


def fixtures_reached(module: Path) -> set[str]:
    """Every fixture name the module's tests request, directly or through other fixtures."""
    shared, _ = _read(E2E / "conftest.py")
    own, tests = _read(module)
    reached: set[str] = set()
    pending = [name for parameters in tests for name in parameters]
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        requested = own.get(name, shared.get(name, []))
        # A module fixture requesting its own name gets conftest's (pytest's override rule).
        pending += [r for r in requested if r != name] + (shared.get(name, []) if name in requested else [])
    return reached


def test_every_e2e_module_using_a_shared_runner_is_in_that_runners_group() -> None:
    # Given the e2e modules and the fixtures their tests reach
    modules = sorted(E2E.glob("test_*.py"))
    reached = {module.relative_to(ROOT).as_posix(): fixtures_reached(module) for module in modules}
    assert "mail_runner" in reached["tests/e2e/test_imap_e2e.py"]  # the reading finds a known user
    # When the modules are grouped by the shared runner they reach
    using = {group: {path for path, names in reached.items() if group in names} for group in RUNNER_GROUPS}
    # Then each group lists exactly those modules: none starts a second runner on another worker
    missing = {group: sorted(using[group] - set(paths)) for group, paths in RUNNER_GROUPS.items()}
    stale = {group: sorted(set(paths) - using[group]) for group, paths in RUNNER_GROUPS.items()}
    assert {group: paths for group, paths in missing.items() if paths} == {}
    assert {group: paths for group, paths in stale.items() if paths} == {}
