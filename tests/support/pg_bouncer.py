"""A pgbouncer of the test's own in front of a PostgreSQL server, in a given pool mode, on a free
loopback port (xdist-safe). pgbouncer refuses to run as root: as root it runs as `postgres`."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import psycopg2

from clients.bench.procs import free_port
from tests.support.waiting import wait_until

PGBOUNCER = "/usr/sbin/pgbouncer"


def available() -> str | None:
    if not Path(PGBOUNCER).exists():
        return "pgbouncer is not installed (make pg-ha installs it)"
    return None


@dataclass
class Bouncer:
    port: int
    mode: str
    process: subprocess.Popen[bytes]

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"


@contextmanager
def running_pgbouncer(server_url: str, mode: str, *, pool_size: int = 20) -> Iterator[Bouncer]:
    """pgbouncer in `mode` (session | transaction | statement) for every database of `server_url`'s
    server, trust auth for the `postgres` user (loopback tests only)."""
    server = urlparse(server_url)
    root = Path(tempfile.mkdtemp(prefix="orderpay-pgbouncer-"))
    port = free_port()
    (root / "users.txt").write_text('"postgres" ""\n')
    (root / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.hostname or '127.0.0.1'} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {root / 'users.txt'}\n"
        f"pool_mode = {mode}\ndefault_pool_size = {pool_size}\nmax_client_conn = 1000\n"
        f"logfile = {root / 'pgbouncer.log'}\npidfile = {root / 'pgbouncer.pid'}\n"
    )
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        for path in root.iterdir():
            shutil.chown(path, "postgres")
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    process = subprocess.Popen(
        [*prefix, PGBOUNCER, str(root / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    bouncer = Bouncer(port, mode, process)
    try:
        wait_until(lambda: _answers(bouncer), 20, f"pgbouncer on port {port}", interval_s=0.05)
        yield bouncer
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _answers(bouncer: Bouncer) -> bool:
    if bouncer.process.poll() is not None:
        raise AssertionError(f"pgbouncer exited with {bouncer.process.returncode}")
    try:
        psycopg2.connect(bouncer.url("postgres"), connect_timeout=1).close()
    except psycopg2.OperationalError:
        return False
    return True
