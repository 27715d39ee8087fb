"""`orderpay serve` with a directory of accounts: a bad one refuses the start in one line (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from clients.bench.procs import free_port
from tests.support.stack import ROOT


def orderpay(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args], cwd=ROOT, env={**os.environ, **env},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_keys_init_accounts_then_a_broken_sub_merchant_refuses_the_start(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    made = orderpay("keys", "init", "--accounts", "--dir", str(keys))
    assert made.returncode == 0, made.stderr
    assert "sp-sub-a: sub_merchant" in made.stdout
    sub = keys / "sp-sub-b" / "merchant.json"
    sub.write_text(json.dumps({**json.loads(sub.read_text()), "provider": "nobody"}))
    refused = orderpay(
        "serve",
        ORDERPAY_CREDENTIALS_DIR=str(keys),
        ORDERPAY_DATABASE_URL=f"sqlite:///{tmp_path / 'o.db'}",
        ORDERPAY_GRPC_LISTEN=f"127.0.0.1:{free_port()}",
        ORDERPAY_NOTIFY_LISTEN=f"127.0.0.1:{free_port()}",
        ORDERPAY_METRICS_LISTEN="",
    )
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert line == "orderpay: account sp-sub-b: sub-merchant without a provider account ('nobody')"
