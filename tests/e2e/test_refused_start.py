"""A refused start leaves no false trail: `serve` without credentials refuses before it creates or
migrates a database, so nothing later mistakes an empty file for the server's database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.stack import ROOT


def test_serve_without_credentials_creates_no_database(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("ORDERPAY_DATABASE_URL", "ORDERPAY_CREDENTIALS_DIR"):
        env.pop(name, None)  # the defaults: .orderpay/orderpay.db and .orderpay/keys, here

    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", "serve"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("orderpay: no credentials bundle in .orderpay/keys"), done.stderr
    assert not (tmp_path / ".orderpay" / "orderpay.db").exists()
