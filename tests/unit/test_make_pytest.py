"""`make pytest` (what `make test` ends with): runs on workers, prints the 15 slowest tests, and fails
when it ran nothing (pytest's exit 5) as it fails on a failing test."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.stack import ROOT


def _make_pytest(*variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return subprocess.run(
        ["make", "--no-print-directory", "-o", "venv", "-o", "chromium", "pytest", *variables],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def test_make_pytest_runs_on_workers_and_prints_the_slowest() -> None:
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "venv", "-o", "chromium", "pytest"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
        env={k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}},
    )  # fmt: skip
    command = dry.stdout.strip().splitlines()[-1]
    assert "-n 3" in command
    assert "--dist loadfile" in command
    assert "--durations=15" in command
    # Its children write bytecode even where the shell forbids it (a Python start-up per process).
    assert command.startswith("env -u PYTHONDONTWRITEBYTECODE ")


def test_xdist_hands_files_out_in_the_suites_long_first_order(pytestconfig: pytest.Config) -> None:
    """xdist's own order (most tests first) would run the one-test drills last; conftest turns it off."""
    if not hasattr(pytestconfig.option, "loadscopereorder"):
        pytest.skip("pytest-xdist is not loaded in this run")
    assert pytestconfig.option.loadscopereorder is False


def test_a_run_that_collects_nothing_fails() -> None:
    done = _make_pytest("PYTEST_WORKERS=0", "PYTEST_ARGS=tests/unit/test_waiting.py -k no_test_is_named_this")

    assert "no tests ran" in done.stdout or "deselected" in done.stdout, done.stdout + done.stderr
    assert done.returncode != 0, done.stdout
