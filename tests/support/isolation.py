"""The suite's isolation from a developer's running stack (`make run`) and from the shell.

`make run` leaves `.orderpay/keys` and `.orderpay/orderpay.db` in the repository and holds the default
ports 50051 (gRPC), 8080 (notify sidecar), 8081 (console), 8090 (sandbox) and 9464 (metrics). A test
must never read the first nor bind the second: every test gets its own credentials directory (or none)
and port 0 for every listener, and the processes it starts report the ports they bound.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DEFAULT_PORTS = {"gRPC": 50051, "notify sidecar": 8080, "console": 8081, "sandbox": 8090, "metrics": 9464}
# The settings tests may pass on to the processes they start; everything else ORDERPAY_* is the shell's.
KEPT = {"ORDERPAY_TEST_DATABASE_URL"}
LISTENERS = {
    "ORDERPAY_GRPC_LISTEN": "127.0.0.1:0",
    "ORDERPAY_NOTIFY_LISTEN": "127.0.0.1:0",
    "ORDERPAY_METRICS_LISTEN": "127.0.0.1:0",
    "ORDERPAY_CONSOLE_LISTEN": "127.0.0.1:0",
}
# A credentials directory that does not exist (per process): an App built from settings_for has no
# payments unless the test hands it a bundle of its own.
NO_CREDENTIALS = str(Path(tempfile.gettempdir()) / f"orderpay-tests-{os.getpid()}" / "no-credentials")
NOWHERE_NOTIFY_URL = "http://127.0.0.1:9/wxpay/notify"  # port 9 (discard): nothing listens


def isolate_environment() -> None:
    """Drop inherited ORDERPAY_* settings and default every listener to port 0, in this process and so in
    every child it starts with `{**os.environ, ...}`. Idempotent."""
    for name in [n for n in os.environ if n.startswith("ORDERPAY_") and n not in KEPT]:
        del os.environ[name]
    os.environ.update(LISTENERS)
