"""`orderpay sandbox clock advance DURATION` wants a unit: a bare number is refused, not taken as seconds."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from sandbox.clock_commands import parse_duration
from tests.support.stack import ROOT


@pytest.mark.parametrize(
    ("text", "seconds"), [("26h", 93_600), ("90m", 5_400), ("1d2h", 93_600), ("30s", 30)]
)
def test_durations_with_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["26", "1.5", "", "h", "26x", "-1h"])
def test_a_bare_number_or_garbage_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_the_cli_says_which_unit_it_wants() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", "sandbox", "clock", "advance", "26", "--url", "http://127.0.0.1:9"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2
    assert "'26' needs a unit: 26s, 26m, 26h or 26d" in done.stderr
