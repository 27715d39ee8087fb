"""The operator's commands: clear one-line errors, and the small ones that touch the database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.stack import ROOT


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args], cwd=ROOT, env={**os.environ, **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_bad_configuration_is_one_line_and_exit_2() -> None:
    done = run("serve", ORDERPAY_MAX_INFLIGHT="many")
    assert done.returncode == 2
    assert done.stderr.strip() == "orderpay: ORDERPAY_MAX_INFLIGHT: expected int, got 'many'"


def test_migrate_then_catalogue_load(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    assert run("migrate", ORDERPAY_DATABASE_URL=url).stdout.strip() == "applied: 0001_initial"
    assert run("migrate", ORDERPAY_DATABASE_URL=url).stdout.strip() == "applied: nothing (up to date)"
    assert "5 inserted" in run("catalogue", "load", ORDERPAY_DATABASE_URL=url).stdout
    assert "5 updated" in run("catalogue", "load", ORDERPAY_DATABASE_URL=url).stdout
    bad = tmp_path / "bad.json"
    bad.write_text('{"products": [{"product_id": "x", "kind": "GOODS", "title": "t", "price_fen": 0}]}')
    refused = run("catalogue", "load", str(bad), ORDERPAY_DATABASE_URL=url)
    assert refused.returncode == 2
    assert "price_fen must be positive" in refused.stderr
