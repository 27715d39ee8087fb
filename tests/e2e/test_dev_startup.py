"""`orderpay dev` start-up failures, as real processes: every port is checked before anything starts,
and a failure is one line naming the port and what holds it, exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.bench.procs import free_port
from tests.support.stack import ROOT
from tests.support.waiting import wait_until


def dev(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    grpc_port, notify_port = free_port(), free_port()
    full_env = {
        **os.environ,
        "ORDERPAY_GRPC_LISTEN": f"127.0.0.1:{grpc_port}",
        "ORDERPAY_NOTIFY_LISTEN": f"127.0.0.1:{notify_port}",
        "ORDERPAY_METRICS_LISTEN": "127.0.0.1:0",
        "ORDERPAY_NOTIFY_URL": f"http://127.0.0.1:{notify_port}/wxpay/notify",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", "dev", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def held_here() -> Iterator[int]:
    """A port this test process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def held_by_child(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A port another process listens on: (port, pid)."""
    port_file = tmp_path / "port"
    script = (
        "import socket, sys, time, pathlib\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "pathlib.Path(sys.argv[1]).write_text(str(s.getsockname()[1]))\n"
        "time.sleep(120)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(port_file)])
    try:
        wait_until(lambda: port_file.exists() and port_file.read_text() != "", 20, "the holder's port")
        yield int(port_file.read_text()), child.pid
    finally:
        child.kill()
        child.wait(timeout=10)


def test_sandbox_port_in_use_fails_before_anything_starts(tmp_path: Path, held_here: int) -> None:
    done = dev(tmp_path, "--sandbox-listen", f"127.0.0.1:{held_here}")

    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"orderpay: port {held_here} (sandbox, --sandbox-listen) is already in use")
    assert f"pid {os.getpid()}" in lines[0]
    assert "dev stack is up" not in done.stdout
    assert not (tmp_path / ".orderpay").exists()  # no keys written, no sandbox started


def test_grpc_port_held_by_another_process_is_named(tmp_path: Path, held_by_child: tuple[int, int]) -> None:
    port, pid = held_by_child

    done = dev(
        tmp_path, "--sandbox-listen", f"127.0.0.1:{free_port()}", ORDERPAY_GRPC_LISTEN=f"127.0.0.1:{port}"
    )

    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line
    held = f"orderpay: port {port} (gRPC, ORDERPAY_GRPC_LISTEN) is already in use by pid {pid}"
    assert line.startswith(f"{held} ({sys.executable} -c")
    assert line.endswith("): stop it, or choose another port with ORDERPAY_GRPC_LISTEN")


def test_two_parts_on_one_port_is_a_configuration_error(tmp_path: Path) -> None:
    port = free_port()

    done = dev(tmp_path, "--sandbox-listen", f"127.0.0.1:{port}", ORDERPAY_NOTIFY_LISTEN=f"127.0.0.1:{port}")

    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"orderpay: --sandbox-listen and ORDERPAY_NOTIFY_LISTEN both want port {port}; give each its own"
    )


def test_a_malformed_database_url_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    done = dev(
        tmp_path, "--sandbox-listen", f"127.0.0.1:{free_port()}", ORDERPAY_DATABASE_URL="sqlite://orderpay.db"
    )

    assert done.returncode == 2
    assert done.stderr.strip().startswith(
        "orderpay: ORDERPAY_DATABASE_URL: 'sqlite://orderpay.db' is not sqlite:///PATH"
    )
    assert "\n" not in done.stderr.strip()
    assert list(tmp_path.iterdir()) == []  # no `sqlite:` directory, no keys


def test_a_sqlite_file_under_a_missing_directory_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/missing/orderpay.db"

    done = dev(tmp_path, "--sandbox-listen", f"127.0.0.1:{free_port()}", ORDERPAY_DATABASE_URL=url)

    assert done.returncode == 2
    missing = tmp_path / "missing"
    assert done.stderr.strip() == (
        f"orderpay: ORDERPAY_DATABASE_URL: directory {missing} does not exist (create it, or fix the path)"
    )
    assert not (tmp_path / "missing").exists()
