"""`make mutate MODULES="crypto.py tenancy.py"`: mutation testing with mutmut over the given modules,
with only the tests that cover them, then killed/survived counts and every survivor.

MODULES are paths under layers/mailbridge/mailbridge/ (`crypto.py`, `store/accounts.py`) or dotted
names (`mailbridge.crypto`). `path::name` limits a run to some functions of a module
(`store/emails.py::EmailStore.transition`, `outbox/service.py::send_queued,fail`): only their
mutants are run and counted. Which tests cover a module (or such a spec) is kept in
scripts/mutate.toml; one missing there is an error (add it with the tests that exercise it).

Why a work directory: mutmut 3 names a mutant after the file's path relative to where it runs
(`layers/mailbridge/mailbridge/crypto.py` -> `layers.mailbridge.mailbridge.crypto`), while the
code under test imports it as `mailbridge.crypto`; mutmut would find no test for any mutant. So
mutmut runs in `.mutate/`, where `mailbridge`, `tests`, `local`, `functions`, `events`, `scripts`
and `template.yaml` are links into the checkout and a generated pyproject.toml holds the mutmut
settings and this project's pytest settings with `pythonpath = ["."]` (mutmut copies everything
into `.mutate/mutants/` and runs pytest there, so the mutated copy is the one imported). Each run
starts from a fresh `mutants/`: a result never comes from an older version of the code or tests.

Exit status: 0 when every mutant was killed (or timed out), 1 when any survived or had no test.
Options: --jobs N (parallel mutants, mutmut's --max-children; default: all CPUs), --list (print
the table and exit).
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "layers" / "mailbridge" / "mailbridge"
TABLE = ROOT / "scripts" / "mutate.toml"
WORK = ROOT / ".mutate"
LINKED = {
    "mailbridge": PACKAGE,
    "tests": ROOT / "tests",
    "local": ROOT / "local",
    "functions": ROOT / "functions",
    "events": ROOT / "events",
    "scripts": ROOT / "scripts",
    "template.yaml": ROOT / "template.yaml",
}
# Beyond tests/ and pyproject.toml (which mutmut always copies): what the tests read from the root
# (scripts/: the backfill tests load the scripts they test, tests/integration/test_owner_backfill.py).
ALSO_COPY = ["local", "functions", "events", "scripts", "template.yaml"]
NOT_KILLED = ("survived", "no tests", "suspicious", "not checked", "segfault")


@dataclass(frozen=True)
class Survivor:
    name: str
    status: str
    path: Path
    line: int | None
    removed: list[str]
    added: list[str]


def module_path(spec: str) -> str:
    """`crypto.py`, `mailbridge/crypto.py`, `layers/mailbridge/mailbridge/crypto.py` or
    `mailbridge.crypto` -> `crypto.py` (relative to the package)."""
    spec = spec.strip().removeprefix("layers/mailbridge/").removeprefix("mailbridge/")
    if not spec.endswith(".py"):
        spec = spec.removeprefix("mailbridge.").replace(".", "/") + ".py"
    if not (PACKAGE / spec).is_file():
        raise SystemExit(f"mutate: no module {spec} under {PACKAGE.relative_to(ROOT)}")
    return spec


@dataclass(frozen=True)
class Target:
    """A module, or some of its functions (`store/emails.py::EmailStore.transition`)."""

    module: str
    functions: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.module}::{','.join(self.functions)}" if self.functions else self.module

    def globs(self) -> list[str]:
        """mutmut's names for this target's mutants (`mailbridge.crypto.x_encrypt__mutmut_3`,
        `mailbridge.store.emails.xǁEmailStoreǁtransition__mutmut_1`)."""
        dotted = "mailbridge." + self.module.removesuffix(".py").replace("/", ".")
        if not self.functions:
            return [f"{dotted}.*"]
        names = []
        for function in self.functions:
            cls, _, name = function.rpartition(".")
            mangled = f"x\u01c1{cls}\u01c1{name}" if cls else f"x_{name}"
            names.append(f"{dotted}.{mangled}__mutmut_*")
        return names


def target(spec: str) -> Target:
    module, _, functions = spec.partition("::")
    names = tuple(f.strip() for f in functions.split(",") if f.strip())
    return Target(module_path(module), names)


def load_table() -> dict[str, list[str]]:
    data = tomllib.loads(TABLE.read_text())
    return {str(k): [str(t) for t in v] for k, v in data["tests"].items()}


def tests_for(targets: list[Target], table: dict[str, list[str]]) -> list[str]:
    missing = [t.key for t in targets if t.key not in table]
    if missing:
        raise SystemExit(
            f"mutate: {', '.join(missing)} not in {TABLE.relative_to(ROOT)}; add each with the tests "
            "that cover it"
        )
    return list(dict.fromkeys(test for t in targets for test in table[t.key]))


def pytest_settings() -> dict[str, object]:
    """This project's pytest settings, with the work directory as the only import root."""
    settings = dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"])
    settings["pythonpath"] = ["."]
    return settings


def toml_value(value: object) -> str:
    return json.dumps(value)  # strings and lists of strings are valid TOML in JSON form


def prepare(modules: list[str], tests: list[str]) -> None:
    if (WORK / "mutants").exists():
        shutil.rmtree(WORK / "mutants")
    WORK.mkdir(exist_ok=True)
    for name, target in LINKED.items():
        link = WORK / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(target, WORK))
    mutmut = {
        "source_paths": ["mailbridge"],
        "only_mutate": [f"mailbridge/{m}" for m in modules],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:cacheprovider"],
        "also_copy": ALSO_COPY,
        "use_git_change_detection": False,
    }
    lines = ["# Generated by scripts/mutate.py for one run; not part of the project.", "[tool.mutmut]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in mutmut.items()]
    lines += ["", "[tool.pytest.ini_options]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in pytest_settings().items()]
    (WORK / "pyproject.toml").write_text("\n".join(lines) + "\n")


def mutmut(*args: str, capture: bool = False) -> str:
    env = dict(os.environ)
    # The corpus tests look for ../shared/data next to the checkout, not next to the work copy.
    env.setdefault("MAILBRIDGE_CORPUS", str(ROOT.parent / "shared" / "data"))
    binary = Path(sys.executable).with_name("mutmut")
    done = subprocess.run(
        [str(binary), *args], cwd=WORK, env=env, check=False, text=True, capture_output=capture
    )
    if done.returncode != 0:
        if capture:
            sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"mutate: mutmut {' '.join(args)} failed (exit {done.returncode})")
    return done.stdout if capture else ""


def diff_lines(diff: str) -> tuple[list[str], list[str], int | None]:
    """(removed lines, added lines, line of the first removed one counted from the function's start)."""
    removed: list[str] = []
    added: list[str] = []
    first: int | None = None
    line = 0
    for row in diff.splitlines():
        if row.startswith(("---", "+++")):
            continue
        if header := re.match(r"@@ -(\d+)", row):
            line = int(header.group(1))
        elif row.startswith("-"):
            removed.append(row[1:])
            first = line if first is None else first
            line += 1
        elif row.startswith("+"):
            added.append(row[1:])
        else:
            line += 1
    return removed, added, first


def function_start(source: str, function: str, cls: str | None) -> tuple[int, int] | None:
    """(first line, last line) of a function as mutmut shows it: from its decorators and the
    comment lines just above them, to its end."""
    tree = ast.parse(source)
    scopes: list[ast.AST] = [tree]
    if cls is not None:
        scopes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls]
    lines = source.splitlines()
    for scope in scopes:
        for node in ast.iter_child_nodes(scope):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                while start > 1 and lines[start - 2].strip().startswith("#"):
                    start -= 1
                return start, node.end_lineno or node.lineno
    return None


def locate(name: str, removed: list[str], offset: int | None) -> tuple[Path, int | None]:
    """The source file and line of a mutant `mailbridge.mod.x_func__mutmut_3` (or `xǁClsǁmeth`)."""
    qualified = name.partition("__mutmut_")[0]
    module, _, mangled = qualified.rpartition(".")
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    if mangled.startswith("x\u01c1"):
        _, cls, function = mangled.split("\u01c1")
    else:
        cls, function = None, mangled.removeprefix("x_")
    source = path.read_text()
    span = function_start(source, function, cls)
    if span is None or not removed:
        return path, span[0] if span else None
    lines = source.splitlines()
    wanted = removed[0].strip()
    if offset is not None:
        guess = span[0] + offset - 1
        if 0 < guess <= len(lines) and lines[guess - 1].strip() == wanted:
            return path, guess
    for number in range(span[0], span[1] + 1):
        if lines[number - 1].strip() == wanted:
            return path, number
    return path, span[0]


def statuses(globs: list[str]) -> dict[str, str]:
    """Every mutant of the run's targets -> its status (killed, survived, timeout, ...)."""
    found = {}
    for row in mutmut("results", "--all", "true", capture=True).splitlines():
        match = re.fullmatch(r"\s*(\S+): (.+)", row)
        if match and any(fnmatch.fnmatchcase(match.group(1), g) for g in globs):
            found[match.group(1)] = match.group(2)
    return found


def survivors(status_by_name: dict[str, str]) -> list[Survivor]:
    found = []
    for name, status in status_by_name.items():
        if status not in NOT_KILLED:
            continue
        removed, added, offset = diff_lines(mutmut("show", name, capture=True))
        path, line = locate(name, removed, offset)
        found.append(Survivor(name, status, path, line, removed, added))
    return sorted(found, key=lambda s: (str(s.path), s.line or 0, s.name))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="make mutate", description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths under layers/mailbridge/mailbridge/")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--list", action="store_true", help="print the module -> tests table")
    args = parser.parse_args(argv)
    table = load_table()
    if args.list or not args.modules:
        for module, tests in table.items():
            print(f"{module}: {' '.join(tests)}")
        if not args.modules:
            print('\nusage: make mutate MODULES="crypto.py tenancy.py"')
        return 0 if args.list else 2
    targets = list({t.key: t for t in (target(m) for m in args.modules)}.values())
    tests = tests_for(targets, table)
    modules = list(dict.fromkeys(t.module for t in targets))
    whole = {t.module for t in targets if not t.functions}
    # A module named whole runs all its mutants; otherwise only those of the named functions.
    globs = [g for t in targets if t.module in whole or t.functions for g in t.globs()]
    limited = [g for t in targets if t.functions and t.module not in whole for g in t.globs()]
    run_args = ["run", "--max-children", str(max(1, args.jobs)), *limited]
    print(f"mutate: {', '.join(t.key for t in targets)}\n  tests: {' '.join(tests)}", flush=True)
    prepare(modules, tests)
    mutmut(*run_args)
    status_by_name = statuses(globs)
    counts = Counter(status_by_name.values())
    left = survivors(status_by_name)
    print()
    print(f"mutate: {', '.join(t.key for t in targets)}")
    print(f"  command: (cd .mutate && mutmut {' '.join(run_args)})")
    print(
        f"  killed {counts['killed']}, survived {counts['survived']}, no tests {counts['no tests']}, "
        f"timeout {counts['timeout']} (counts as killed), suspicious {counts['suspicious']}, "
        f"not checked {counts['not checked']}, total {len(status_by_name)}"
    )
    for s in left:
        where = f"{s.path.relative_to(ROOT)}:{s.line}" if s.line else str(s.path.relative_to(ROOT))
        print(f"  {s.status}: {where}  {s.name}")
        for line in s.removed:
            print(f"      - {line.strip()}")
        for line in s.added:
            print(f"      + {line.strip()}")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
