"""`orderpay serve` with a malformed ORDERPAY_DATABASE_READ_URL refuses to start: exit 2, one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.stack import ROOT


def test_serve_refuses_a_malformed_read_url_in_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ORDERPAY_DATABASE_URL": "postgresql://app@127.0.0.1:9/orderpay",
        "ORDERPAY_DATABASE_READ_URL": "postgresql://app:secret@standby:5432,standby2:54x/orderpay",
    }
    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", "serve"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("orderpay: ORDERPAY_DATABASE_READ_URL: "), done.stderr
    assert "bad port '54x'" in done.stderr
    assert "secret" not in done.stderr  # the password is never echoed
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
