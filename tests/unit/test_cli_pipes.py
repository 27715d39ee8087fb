"""`orderpay ... | head`: a reader that goes away early ends the command quietly, no BrokenPipeError
traceback on the terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.stack import ROOT


def test_a_closed_pipe_ends_the_command_without_a_traceback(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "keys", "init", "--dir", str(tmp_path / "keys")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()  # `head` read what it wanted (here: nothing) and left, before the first write

    with process.stderr:
        stderr = process.stderr.read().decode()
    code = process.wait(timeout=60)

    assert "Traceback" not in stderr, stderr
    assert "BrokenPipeError" not in stderr, stderr
    assert code == 141  # as a shell reports a command ended by SIGPIPE
    assert (tmp_path / "keys" / "merchant.json").exists()  # the work itself was done
