"""The harness's one wait: it gives up the moment the child it waits on exits, showing what it printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.waiting import ChildExitedError, wait_until


def test_a_wait_on_a_child_that_exits_fails_at_once_with_its_output(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys; print('port 8081 is already in use'); sys.exit(2)"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    with pytest.raises(ChildExitedError) as failed:  # not "timed out after 60 s"
        wait_until(lambda: False, 60, "the banner", child=child, output=log)

    assert "exited with 2" in str(failed.value)
    assert "port 8081 is already in use" in str(failed.value)


def test_a_condition_met_before_the_child_exits_is_not_a_failure(tmp_path: Path) -> None:
    marker = tmp_path / "done"
    child = subprocess.Popen([sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"])
    child.wait(timeout=30)

    wait_until(marker.exists, 5, "the marker", child=child)


def test_a_timeout_still_says_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0\.05 s waiting for nothing"):
        wait_until(lambda: False, 0.05, "nothing")
