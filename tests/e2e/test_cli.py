"""The operator's commands: clear one-line errors, and the small ones that touch the database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from clients.bench.procs import free_port
from server.adapters.db import MIGRATIONS_DIR
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
    applied = run("migrate", ORDERPAY_DATABASE_URL=url).stdout.strip()
    shipped = sorted(path.stem for path in Path(MIGRATIONS_DIR).glob("[0-9]*.py"))
    assert shipped[:4] == ["0001_initial", "0003_reconciliation", "0004_accounts", "0005_event_log"]
    assert applied == "applied: " + ", ".join(shipped)  # every migration shipped, in name order
    assert run("migrate", ORDERPAY_DATABASE_URL=url).stdout.strip() == "applied: nothing (up to date)"
    assert "6 inserted" in run("catalogue", "load", ORDERPAY_DATABASE_URL=url).stdout  # gift-card: EXTERNAL
    assert "6 updated" in run("catalogue", "load", ORDERPAY_DATABASE_URL=url).stdout
    bad = tmp_path / "bad.json"
    bad.write_text('{"products": [{"product_id": "x", "kind": "GOODS", "title": "t", "price_fen": 0}]}')
    refused = run("catalogue", "load", str(bad), ORDERPAY_DATABASE_URL=url)
    assert refused.returncode == 2
    assert "price_fen must be positive" in refused.stderr


def test_an_unreachable_database_is_one_line_and_debug_shows_the_traceback() -> None:
    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/orderpay"

    done = run("migrate", ORDERPAY_DATABASE_URL=url)

    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line
    assert line.startswith(
        f"orderpay: cannot open the database {url.replace('secret', '***')} (ORDERPAY_DATABASE_URL): "
    )
    assert "Connection refused" in line
    assert "secret" not in line

    debug = run("--debug", "migrate", ORDERPAY_DATABASE_URL=url)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "peewee.OperationalError" in debug.stderr


def test_serve_checks_its_ports_before_starting(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]

        done = run(
            "serve", "--only", "grpc",
            ORDERPAY_GRPC_LISTEN=f"127.0.0.1:{port}",
            ORDERPAY_DATABASE_URL=f"sqlite:///{tmp_path / 'o.db'}",
        )  # fmt: skip

    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line
    assert line.startswith(
        f"orderpay: port {port} (gRPC, ORDERPAY_GRPC_LISTEN) is already in use by pid {os.getpid()} ("
    )
    assert line.endswith("): stop it, or choose another port with ORDERPAY_GRPC_LISTEN")
    assert not (tmp_path / "o.db").exists()  # nothing started, nothing migrated


def test_a_malformed_listen_address_is_one_line() -> None:
    done = run("serve", ORDERPAY_GRPC_LISTEN="localhost")

    assert (done.returncode, done.stderr.strip()) == (
        2,
        "orderpay: ORDERPAY_GRPC_LISTEN: want HOST:PORT, got 'localhost'",
    )


def test_serve_without_a_usable_credentials_bundle_refuses_in_one_line(tmp_path: Path) -> None:
    """No silent orders-only server that answers CreatePayment UNIMPLEMENTED: it does not start."""
    common = {
        "ORDERPAY_DATABASE_URL": f"sqlite:///{tmp_path / 'o.db'}",
        "ORDERPAY_GRPC_LISTEN": f"127.0.0.1:{free_port()}",
        "ORDERPAY_NOTIFY_LISTEN": f"127.0.0.1:{free_port()}",
        "ORDERPAY_METRICS_LISTEN": "",
    }
    missing = run("serve", ORDERPAY_CREDENTIALS_DIR=str(tmp_path / "nowhere"), **common)
    assert missing.returncode == 2
    (line,) = missing.stderr.strip().splitlines()
    assert "ORDERPAY_CREDENTIALS_DIR" in line
    assert "keys init" in line
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "merchant.json").write_text("{not json")
    refused = run("serve", ORDERPAY_CREDENTIALS_DIR=str(broken), **common)
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "Traceback" not in refused.stderr


def test_a_multi_host_url_without_a_writable_target_is_refused_in_one_line() -> None:
    url = f"postgresql://app:secret@127.0.0.1:{free_port()},127.0.0.1:{free_port()}/orderpay"
    done = run("migrate", ORDERPAY_DATABASE_URL=url)
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line
    assert "lists 2 hosts; add ?target_session_attrs=read-write" in line
    assert "secret" not in line


def test_a_formation_with_no_node_answering_is_one_line() -> None:
    hosts = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    url = f"postgresql://app:secret@{hosts}/orderpay?target_session_attrs=read-write"
    done = run("migrate", ORDERPAY_DATABASE_URL=url)
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line
    assert line.startswith("orderpay: cannot open the database postgresql://app:***@")
    assert "secret" not in line
