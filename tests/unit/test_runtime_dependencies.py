"""`make run` installs the runtime dependencies only, and they are enough: every third-party module the
shipped code imports (server/, sandbox/, clients/, lazily or not) comes from a runtime dependency or
one of theirs, never from the dev/test set that `make test` adds."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"server", "sandbox", "clients", "orderpay"}
SHIPPED = ("server", "sandbox", "clients")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert found is not None, requirement
    return _normal(found.group(0))


def _runtime_closure() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pending = [_requirement_name(r) for r in project["dependencies"]]
    closure: set[str] = set()
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:  # excluded by its marker (e.g. python_version < "3.8")
            continue
        closure.add(name)
        # Optional extras are not installed by `pip install .`.
        pending.extend(_requirement_name(r) for r in requires if "extra ==" not in r)
    return closure


def _imports() -> Iterator[tuple[str, str]]:
    for package in SHIPPED:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    yield str(path.relative_to(ROOT)), name.split(".")[0]


def test_shipped_code_imports_only_runtime_dependencies() -> None:
    closure = _runtime_closure()
    providers = metadata.packages_distributions()
    outside = sorted(
        f"{where}: {module} (from {', '.join(providers.get(module, ['nothing installed']))})"
        for where, module in set(_imports())
        if module not in FIRST_PARTY
        and module not in sys.stdlib_module_names
        and not any(_normal(dist) in closure for dist in providers.get(module, []))
    )
    assert outside == []


def _dry_run(target: str) -> str:
    # Run as a top-level make even under `make test`: a nested one prints "Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_make_run_installs_the_runtime_set_and_make_test_the_dev_set() -> None:
    run = _dry_run("run")
    installs = [line for line in run.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [".venv/bin/pip install -q -c requirements.lock -e ."], run
    assert "[dev]" not in run
    assert run.strip().endswith("orderpay dev")

    test = _dry_run("test")
    assert ".venv/bin/pip install -q -c requirements.lock -e '.[dev]'" in test
    assert "fonts-noto-cjk" in test  # with the browser, for the cashier page's Chinese labels
