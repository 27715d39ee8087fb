"""A throwaway PostgreSQL cluster of the test's own (initdb into a temp dir, a free port), so a drill
can SIGKILL it without touching the shared server. PostgreSQL refuses to run as root: when the tests
run as root, initdb and postgres run as the `postgres` user."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from clients.bench.procs import free_port
from tests.support.waiting import wait_until

BIN = Path("/usr/lib/postgresql/15/bin")


def available() -> str | None:
    """None when a cluster can be made here, else why not (for the skip message)."""
    if not (BIN / "initdb").exists():
        return f"no PostgreSQL binaries in {BIN}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run PostgreSQL as"
    return None


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@dataclass
class Cluster:
    datadir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        log = (self.datadir.parent / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            _as_postgres(
                [
                    str(BIN / "postgres"),
                    "-D",
                    str(self.datadir),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.datadir),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=200",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(self._answers, 60, f"PostgreSQL on port {self.port}", interval_s=0.1)

    def kill(self) -> None:
        """SIGKILL the postmaster; its backends notice and exit, nothing shuts down cleanly."""
        if self.process is not None:
            # runuser forwards nothing on SIGKILL: kill the postmaster itself, whose pid it records.
            pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
            backends = _children(pid)
            os.kill(pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            wait_until(lambda: not self._answers(), 10, "PostgreSQL gone", interval_s=0.05)
            # Orphaned backends keep the shared memory attached until they notice; a new postmaster
            # refuses to start until they have (slow on a loaded machine).
            wait_until(
                lambda: not any(_running(b) for b in backends), 30, "old backends gone", interval_s=0.05
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            subprocess.run(
                _as_postgres([str(BIN / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"]),
                check=False,
                capture_output=True,
            )
            self.process.wait(timeout=10)

    def _answers(self) -> bool:
        try:
            psycopg2.connect(self.admin_url, connect_timeout=1).close()
        except psycopg2.OperationalError:
            return False
        return True


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="orderpay-pg-"))
    root.chmod(0o755)
    datadir = root / "data"
    datadir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(datadir, "postgres")
    subprocess.run(
        _as_postgres([str(BIN / "initdb"), "-D", str(datadir), "-U", "postgres", "-A", "trust", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    cluster = Cluster(datadir, free_port())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
