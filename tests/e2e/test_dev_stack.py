"""`orderpay dev` (what `make run` runs) comes up from nothing, and `orderpay demo` completes against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from clients.bench.procs import free_port
from tests.support.stack import ROOT, STARTUP_S
from tests.support.waiting import wait_until


def test_dev_stack_and_demo(tmp_path: Path) -> None:
    grpc_port, notify_port, sandbox_port, console_port = free_port(), free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "ORDERPAY_GRPC_LISTEN": f"127.0.0.1:{grpc_port}",
        "ORDERPAY_NOTIFY_LISTEN": f"127.0.0.1:{notify_port}",
        "ORDERPAY_METRICS_LISTEN": "127.0.0.1:0",
        "ORDERPAY_NOTIFY_URL": f"http://127.0.0.1:{notify_port}/wxpay/notify",
        "ORDERPAY_CONSOLE_LISTEN": f"127.0.0.1:{console_port}",  # issue 13
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        dev = subprocess.Popen(  # the working directory is fresh: keys, database, everything is made
            [sys.executable, "-m", "clients.cli", "dev", "--sandbox-listen", f"127.0.0.1:{sandbox_port}"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: "dev stack is up" in log.read_text(), STARTUP_S, "the dev banner", child=dev, output=log
        )
        demo = subprocess.run(
            [
                sys.executable,
                "-m",
                "clients.cli",
                "demo",
                "--target",
                f"127.0.0.1:{grpc_port}",
                "--sandbox-url",
                f"http://127.0.0.1:{sandbox_port}",
                "--user-id",
                "dev-test",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "FULFILMENT_SUCCEEDED" in demo.stdout
        assert "TRANSACTION.SUCCESS -> HTTP 204" in demo.stdout
        keys = tmp_path / ".orderpay" / "keys"  # issue 18: a directory per account
        assert {p.name for p in keys.iterdir() if p.is_dir()} == {
            "direct-pk",
            "direct-cert",
            "sp",
            "sp-sub-a",
            "sp-sub-b",
        }
        assert "[3] account                direct-pk" in demo.stdout  # the dev default
        for merchant in ("direct-cert", "sp-sub-a", "sp-sub-b"):  # `orderpay demo --merchant X`
            through = subprocess.run(
                [
                    sys.executable, "-m", "clients.cli", "demo", "--target", f"127.0.0.1:{grpc_port}",
                    "--sandbox-url", f"http://127.0.0.1:{sandbox_port}", "--user-id", f"dev-{merchant}",
                    "--merchant", merchant,
                ],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert through.returncode == 0, through.stdout + through.stderr
            assert f"[3] account                {merchant}" in through.stdout
            assert "TRANSACTION.SUCCESS -> HTTP 204" in through.stdout
        assert f"console        http://127.0.0.1:{console_port}/" in log.read_text()  # what `make run` prints
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(timeout=30)
    assert code == 0, log.read_text()[-2000:]
    database = tmp_path.resolve() / ".orderpay" / "orderpay.db"
    assert f"  database       sqlite:///.orderpay/orderpay.db   ({database})" in log.read_text()
    # Piped, dev logs one JSON object per request, at the default level (info).
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    created = [e for e in events if e.get("event") == "rpc" and e.get("rpc", "").endswith("/CreateOrder")]
    assert [(e["code"], e["user_id"]) for e in created if e["user_id"] == "dev-test"] == [("OK", "dev-test")]
    assert created[0]["request_id"]
