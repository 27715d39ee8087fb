"""`orderpay dev` on ephemeral ports explains itself: the banner shows the ports really bound and hints
that work as printed; the sandbox's and the sidecar's `/` say what they are; metrics carry process
figures and no `_created` series; the README's grpcurl block runs as written."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.stack import ROOT, STARTUP_S
from tests.support.waiting import wait_until

GRPCURL_PY = (sys.executable, "-m", "tests.support.grpcurl_py", "-plaintext")


@dataclass(frozen=True)
class Dev:
    banner: str
    workdir: Path
    env: dict[str, str]

    def address(self, label: str) -> str:
        found = re.search(rf"^  {label}\s+(\S+)", self.banner, re.MULTILINE)
        assert found is not None, self.banner
        return found.group(1)

    @property
    def grpc(self) -> str:
        return self.address("gRPC")

    @property
    def sandbox(self) -> str:
        return self.address("sandbox").rstrip("/")

    @property
    def sidecar(self) -> str:
        return self.address("notify sidecar").removesuffix("/wxpay/notify")

    @property
    def metrics(self) -> str:
        return self.address("metrics")


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    workdir = tmp_path_factory.mktemp("dev-ephemeral")
    env = {
        **os.environ,
        "ORDERPAY_GRPC_LISTEN": "127.0.0.1:0",
        "ORDERPAY_NOTIFY_LISTEN": "127.0.0.1:0",
        "ORDERPAY_METRICS_LISTEN": "127.0.0.1:0",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("ORDERPAY_NOTIFY_URL", None)  # derived from the sidecar's bound port
    log = workdir / "dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "dev", "--sandbox-listen", ":0"],  # `:PORT` = loopback
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: "Ctrl-C stops everything" in log.read_text(),
            STARTUP_S,
            "the dev banner",
            child=process,
            output=log,
        )
        text = log.read_text()
        yield Dev(text[text.index("orderpay dev stack is up") :], workdir, env)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    assert code == 0, log.read_text()[-2000:]


def test_the_banner_shows_the_bound_ports(dev: Dev) -> None:
    for address in (dev.grpc, dev.sandbox, dev.sidecar, dev.metrics):
        port = int(re.sub(r"/.*$", "", address.split("//")[-1]).rsplit(":", 1)[1])
        assert port != 0, dev.banner
    assert ":0/" not in dev.banner
    assert ":0 " not in dev.banner


def test_the_banner_names_every_service_reflection_lists(dev: Dev) -> None:
    listed = subprocess.run(
        [*GRPCURL_PY, dev.grpc, "list"], cwd=ROOT, env=dev.env, capture_output=True, text=True, timeout=30,
        check=True,
    ).stdout.split()  # fmt: skip
    shown = re.search(r"^  gRPC\s+\S+\s+\((.*)\)$", dev.banner, re.MULTILINE)
    assert shown is not None, dev.banner
    named = {name.strip() for name in shown.group(1).split(",")}

    for service in listed:
        short = service.rsplit(".", 1)[1]
        assert short in named or service.startswith("grpc."), (service, dev.banner)
    assert {"health", "reflection"} <= named


def test_the_demo_hint_works_as_printed(dev: Dev) -> None:
    hint = next(line for line in dev.banner.splitlines() if "# a VIP purchase" in line)
    command = shlex.split(hint.split("#")[0])
    assert command[0] == ".venv/bin/orderpay"
    assert f"--target {dev.grpc}" in hint
    assert f"--sandbox-url {dev.sandbox}" in hint

    demo = subprocess.run(
        [sys.executable, "-m", "clients.cli", *command[1:], "--user-id", "hint-user"],
        cwd=dev.workdir, env=dev.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert demo.returncode == 0, demo.stdout + demo.stderr
    # The sandbox found the sidecar on its ephemeral port: the notify URL followed it.
    assert "TRANSACTION.SUCCESS -> HTTP 204" in demo.stdout
    assert "FULFILMENT_SUCCEEDED" in demo.stdout


def test_the_sandbox_index_says_what_it_is(dev: Dev) -> None:
    index = httpx.get(f"{dev.sandbox}/")

    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert "fake WeChat Pay" in index.text
    for link in ("/sandbox/v1/config", "/sandbox/v1/state", "/sandbox/v1/notifications", "/sandbox/v1/keys"):
        assert f'href="{link}"' in index.text
        assert httpx.get(f"{dev.sandbox}{link}").status_code == 200
    assert 'href="/README.md"' in index.text
    readme = httpx.get(f"{dev.sandbox}/README.md")
    assert readme.status_code == 200
    assert readme.text.startswith("# orderpay sandbox")


def test_the_sidecar_index_says_what_it_is_and_keeps_metrics_off_it(dev: Dev) -> None:
    index = httpx.get(f"{dev.sidecar}/")

    assert index.status_code == 200
    assert "notify sidecar" in index.text
    assert "POST /wxpay/notify" in index.text
    for link in ("/healthz", "/readyz"):
        assert f'href="{link}"' in index.text
        assert httpx.get(f"{dev.sidecar}{link}").status_code == 200
    assert 'href="/metrics"' not in index.text
    assert "ORDERPAY_METRICS_LISTEN" in index.text
    assert httpx.get(f"{dev.sidecar}/metrics").status_code == 404  # never on the internet-facing listener


def test_metrics_have_process_figures_and_no_created_series(dev: Dev) -> None:
    text = httpx.get(dev.metrics).text
    samples = {line.split(" ")[0].split("{")[0] for line in text.splitlines() if not line.startswith("#")}

    assert not [name for name in samples if name.endswith("_created")], sorted(samples)
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert name in samples
    assert re.search(r'^orderpay_build_info\{version="[^"]+"\} 1\.0$', text, re.MULTILINE)
    fds = re.search(r"^process_open_fds (\S+)$", text, re.MULTILINE)
    assert fds is not None
    assert float(fds.group(1)) > 0


def test_the_readme_grpcurl_block_runs_as_written(dev: Dev, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Calling it with grpcurl") :]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found is not None
    block = found.group(1).replace("127.0.0.1:50051", dev.grpc)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = shutil.which("grpcurl") or shutil.which("grpcurl", path=str(ROOT / ".venv" / "bin"))
    if real is None:  # the same calls through server reflection from Python
        shim = bin_dir / "grpcurl"
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m tests.support.grpcurl_py "$@"\n')
        shim.chmod(shim.stat().st_mode | stat.S_IEXEC)

    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        env={**dev.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    for service in ("orderpay.v1.OrderService", "orderpay.v1.PayService", "orderpay.v1.VipService"):
        assert service in done.stdout
    assert '"product_id": "vip-month"' in done.stdout  # ListPlans
    assert '"status": "ORDER_STATUS_UNPAID"' in done.stdout  # CreateOrder
    assert re.search(r'"code_url": "weixin://wxpay/bizpayurl\?pr=\S+"', done.stdout)  # CreatePayment


def test_admin_only_calls_are_refused_to_the_bff_token(dev: Dev, tmp_path: Path) -> None:
    # What the README says about roles, through the same reflection client the shim uses.
    refused = subprocess.run(
        [*GRPCURL_PY, "-H", "authorization: Bearer dev-bff-token",
         "-d", '{"order_id": "ord_x", "status": "ORDER_STATUS_PAID"}', dev.grpc,
         "orderpay.v1.OrderService/UpdateOrderStatus"],
        cwd=ROOT, env=dev.env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "PermissionDenied" in refused.stderr
    assert "needs the admin role" in refused.stderr

    unauthenticated = subprocess.run(
        [*GRPCURL_PY, dev.grpc, "orderpay.v1.VipService/ListPlans"],
        cwd=ROOT, env=dev.env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert "Unauthenticated" in unauthenticated.stderr
    assert "missing bearer token" in unauthenticated.stderr
