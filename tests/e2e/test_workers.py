"""`orderpay serve --workers N`: N processes share the gRPC port over one PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clients.bench.procs import free_port
from clients.client import OrderPayClient
from tests.support.databases import fresh_postgres
from tests.support.stack import ROOT, orderpay
from tests.support.waiting import wait_until

pytestmark = pytest.mark.postgres


def ready_pids(log: Path) -> set[int]:
    pids = set()
    for line in log.read_text().splitlines():
        if '"serve.ready"' in line:
            pids.add(int(json.loads(line)["pid"]))
    return pids


def test_two_workers_share_the_port_and_stop_together(postgres_admin: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    orderpay("keys", "init", "--dir", str(keys))
    port = free_port()
    with fresh_postgres(postgres_admin) as database_url:
        env = {
            **os.environ,
            "ORDERPAY_DATABASE_URL": database_url,
            "ORDERPAY_GRPC_LISTEN": f"127.0.0.1:{port}",
            "ORDERPAY_NOTIFY_LISTEN": f"127.0.0.1:{free_port()}",
            "ORDERPAY_METRICS_LISTEN": "127.0.0.1:0",
            "ORDERPAY_CREDENTIALS_DIR": str(keys),
            "ORDERPAY_WXPAY_BASE_URL": "http://127.0.0.1:9",
            "ORDERPAY_API_TOKENS": "bff:w-bff",
            "ORDERPAY_LOG_FORMAT": "json",
            "ORDERPAY_LOG_LEVEL": "info",
        }
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            supervisor = subprocess.Popen(
                [sys.executable, "-m", "clients.cli", "serve", "--workers", "2"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(
                lambda: len(ready_pids(log)) == 2, 60, "both workers ready", child=supervisor, output=log
            )
            for i in range(20):  # a fresh connection each time: the kernel spreads them over the workers
                with OrderPayClient(f"127.0.0.1:{port}", "w-bff") as client:
                    assert client.create_order(f"w-{i}", "vip-month").order.total_fee == 1800
        finally:
            supervisor.send_signal(signal.SIGTERM)
            code = supervisor.wait(timeout=30)
        assert code == 0, log.read_text()[-2000:]
        for pid in ready_pids(log):
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
