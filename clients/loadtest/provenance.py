"""Where a run's figures came from, so two reports can be compared: orderpay's version and commit, the
host, its cores and Python, and when the run started."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from clients.cli import version

CHECKOUT = Path(__file__).resolve().parents[2]


def provenance() -> dict[str, object]:
    return {
        "version": version(),
        "commit": _commit(),
        "host": socket.gethostname(),
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _commit() -> str:
    """The checkout's commit (with `+dirty` when it has changes), or "unknown" outside a git checkout."""
    try:
        head = subprocess.run(  # noqa: S603 - git, fixed arguments
            ["git", "-C", str(CHECKOUT), "rev-parse", "--short=12", "HEAD"],  # noqa: S607
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(  # noqa: S603
            ["git", "-C", str(CHECKOUT), "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head
