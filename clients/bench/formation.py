"""A throwaway pg_auto_failover formation: a monitor, a primary and a synchronous standby, PostgreSQL 15
processes on loopback ports under one temp directory (xdist-safe: random ports, a directory per
formation). Used by the replicated B5 benchmark (`orderpay bench`) and the failover drill (tests).

Everything runs as the `postgres` user with a clean environment (pg_autoctl keeps its state under
XDG_* directories and refuses a root PATH full of shims). `kill_postmaster` is the drill's fault: a
SIGKILL of one node's postmaster, after which pg_autoctl and its monitor decide what happens.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

from clients.bench.procs import free_port

PG_AUTOCTL = "/usr/bin/pg_autoctl"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATABASE = "orderpay"
# Small instances: pg_autoctl would give each 25 % of the machine's memory.
INSTANCE_SETTINGS = {
    "shared_buffers": "64MB",
    "max_connections": "200",
    "wal_keep_size": "256MB",
}
# The monitor's timeouts, tightened from pg_auto_failover's defaults (health checks every 5 s, a node
# unhealthy after 20 s) so a whole-node loss is decided within the drill's time; a postmaster kill is
# reported by the node's own keeper and does not wait for these. docs/high-availability.md
MONITOR_SETTINGS = {
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "5000",
    "pgautofailover.startup_grace_period": "5000",
}


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def available() -> str | None:
    """None when a formation can be made here, else why not (for the skip message)."""
    if not Path(PG_AUTOCTL).exists():
        return "pg_autoctl is not installed (make pg-ha installs postgresql-15-auto-failover)"
    if not (PG_BIN / "pg_ctl").exists():
        return f"no PostgreSQL binaries in {PG_BIN}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run PostgreSQL as"
    return None


@dataclass
class Node:
    name: str
    pgdata: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def answers(self) -> bool:
        try:
            psycopg2.connect(self.url, connect_timeout=1).close()
        except psycopg2.OperationalError:
            return False
        return True

    def is_primary(self) -> bool:
        try:
            conn = psycopg2.connect(self.url, connect_timeout=1)
        except psycopg2.OperationalError:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
                recovery, read_only = cur.fetchone()
        except psycopg2.Error:
            return False
        finally:
            conn.close()
        return not recovery and read_only == "off"


@dataclass
class Formation:
    root: Path
    monitor: Node
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """What orderpay is given: every node, libpq picks the writable one."""
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        return f"postgresql://postgres@{hosts}/{DATABASE}?target_session_attrs=read-write&connect_timeout=2"

    @property
    def monitor_url(self) -> str:
        return f"postgresql://autoctl_node@127.0.0.1:{self.monitor.port}/pg_auto_failover"

    def primary(self) -> Node | None:
        return next((n for n in self.nodes if n.is_primary()), None)

    def standby(self) -> Node:
        primary = self.primary()
        return next(n for n in self.nodes if n is not primary)

    def states(self) -> dict[str, tuple[str, str]]:
        """node name -> (reported state, goal state), as the monitor sees them."""
        conn = psycopg2.connect(self.monitor_url, connect_timeout=2)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT nodename, reportedstate::text, goalstate::text FROM pgautofailover.node")
                return {name: (reported, goal) for name, reported, goal in cur.fetchall()}
        finally:
            conn.close()

    def healthy(self) -> bool:
        """A primary and a secondary, both where the monitor wants them."""
        try:
            states = self.states()
        except psycopg2.Error:
            return False
        reported = sorted(r for r, g in states.values() if r == g)
        return reported == ["primary", "secondary"]

    def wait_healthy(self, timeout_s: float = 120) -> float:
        started = time.monotonic()
        wait_until(self.healthy, timeout_s, "the formation: a primary and a secondary", interval_s=0.2)
        return time.monotonic() - started

    def kill_postmaster(self, node: Node) -> None:
        pid = node.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def kill_node(self, node: Node) -> None:
        """The whole node dies: its keeper (pg_autoctl) and its postmaster, both SIGKILLed."""
        if node.process is not None and node.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait(timeout=10)
        self.kill_postmaster(node)
        wait_until(
            lambda: not _alive(node.postmaster_pid()), 10, f"{node.name}'s postmaster gone", interval_s=0.05
        )

    def restart_node(self, node: Node) -> None:
        """Its keeper again, which starts PostgreSQL and rejoins the formation as the monitor says."""
        _start(self.root, node)


def _env(root: Path) -> dict[str, str]:
    return {
        "HOME": str(root),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_DATA_HOME": str(root / "share"),
        "XDG_RUNTIME_DIR": str(root / "run"),
        "PG_REGRESS_SOCK_DIR": str(root / "sock"),
        "PGHOST": str(root / "sock"),
        "PATH": f"{PG_BIN}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
    }


def _as_postgres(root: Path, args: list[str]) -> list[str]:
    env = [f"{k}={v}" for k, v in _env(root).items()]
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return [*prefix, "env", "-i", *env, *args]


def _run(formation_or_root: Formation | Path, args: list[str], *, check: bool = True) -> str:
    root = formation_or_root.root if isinstance(formation_or_root, Formation) else formation_or_root
    done = subprocess.run(  # noqa: S603 - pg_autoctl with arguments built here
        _as_postgres(root, args), capture_output=True, text=True, timeout=120, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def _tune(pgdata: Path, extra: dict[str, str] | None = None) -> None:
    with (pgdata / "postgresql.auto.conf").open("a") as fh:
        for key, value in {**INSTANCE_SETTINGS, **(extra or {})}.items():
            fh.write(f"{key} = '{value}'\n")


def _start(root: Path, node: Node) -> None:
    log = (root / f"{node.name}.log").open("ab")
    node.process = subprocess.Popen(  # noqa: S603 - pg_autoctl with arguments built here
        _as_postgres(root, [PG_AUTOCTL, "run", "--pgdata", str(node.pgdata)]),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()


def _common(node: Node) -> list[str]:
    where = ["--pgdata", str(node.pgdata), "--pgport", str(node.port), "--hostname", "127.0.0.1"]
    return [*where, "--listen", "127.0.0.1", "--auth", "trust", "--no-ssl", "--pgctl", str(PG_BIN / "pg_ctl")]


def _create_node(formation: Formation, name: str) -> Node:
    node = Node(name, formation.root / name / "pgdata", free_port())
    _run(formation, [PG_AUTOCTL, "create", "postgres", *_common(node), "--name", name,
                     "--monitor", formation.monitor_url, "--dbname", DATABASE,
                     "--username", "postgres"])  # fmt: skip
    if not formation.nodes:
        _tune(node.pgdata)  # the standby inherits it through pg_basebackup
    _start(formation.root, node)
    formation.nodes.append(node)
    return node


@contextmanager
def running_formation(*, standbys: int = 1) -> Iterator[Formation]:
    """Monitor, primary and `standbys` synchronous standbys; everything stopped and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="orderpay-paf-"))
    root.chmod(0o755)
    for sub in ("config", "share", "run", "sock"):
        (root / sub).mkdir()
    if os.geteuid() == 0:
        for path in (root, *root.iterdir()):
            shutil.chown(path, "postgres")
    monitor = Node("monitor", root / "monitor" / "pgdata", free_port())
    formation = Formation(root, monitor)
    try:
        _run(formation, [PG_AUTOCTL, "create", "monitor", *_common(monitor)])
        _tune(monitor.pgdata, MONITOR_SETTINGS)
        _start(root, monitor)
        wait_until(lambda: _monitor_answers(formation), 60, "the pg_auto_failover monitor", interval_s=0.2)
        primary = _create_node(formation, "node1")
        wait_until(primary.is_primary, 60, "the first node as a primary", interval_s=0.2)
        for i in range(standbys):
            _create_node(formation, f"node{i + 2}")
        formation.wait_healthy()
        yield formation
    finally:
        _teardown(formation)


def _monitor_answers(formation: Formation) -> bool:
    try:
        psycopg2.connect(formation.monitor_url, connect_timeout=1).close()
    except psycopg2.OperationalError:
        return False
    return True


def _teardown(formation: Formation) -> None:
    """Throwaway data: SIGKILL, no clean shutdown (a clean one of three instances takes ~15 s here).
    The keepers first, so none restarts its postmaster; then the postmasters, which run in sessions
    of their own (their backends exit when they notice the postmaster is gone)."""
    everyone = [*formation.nodes, formation.monitor]
    for node in everyone:
        if node.process is not None and node.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)
    for node in everyone:
        if node.process is not None:
            node.process.wait(timeout=10)
        pid = node.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for node in everyone:
        pid = node.postmaster_pid()
        wait_until(lambda pid=pid: not _alive(pid), 10, f"{node.name} gone", interval_s=0.05)  # type: ignore[misc]
    shutil.rmtree(formation.root, ignore_errors=True)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie nobody reaps yet is gone for our purpose
