"""Start-up failures in one line: what went wrong and which setting to change.

The CLI's server commands (`serve`, `dev`, `migrate`, `catalogue load`) end with this line and exit 2
instead of a 40-80-line traceback; `orderpay --debug COMMAND` shows the traceback instead. Only
failures known to mean "cannot start like this" are explained; anything else stays a traceback, since
that is a bug to report.
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Iterator

import peewee as pw

from server.config import StartupError, load_settings, redact
from server.domain.errors import DomainError
from server.port_check import who_listens
from server.wxpay.errors import CredentialsError

_GRPC_BIND = re.compile(r"^Failed to bind to address (\S+?);")
_PORT_IN_MESSAGE = re.compile(r"[:,] ?'?(\d{1,5})\)?'?(?:\D*$)")


def explain(error: BaseException) -> str | None:
    """The one line for a known start-up failure, else None (let the traceback show)."""
    if isinstance(error, StartupError | CredentialsError | DomainError | FileNotFoundError):
        return str(error)
    if isinstance(error, pw.OperationalError | pw.InterfaceError):
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return f"cannot open the database {_database()} (ORDERPAY_DATABASE_URL): {first}"
    if isinstance(error, RuntimeError) and (bind := _GRPC_BIND.match(str(error))):
        address = bind.group(1)
        return f"gRPC cannot listen on {address} (ORDERPAY_GRPC_LISTEN): {_port_taken(address)}"
    in_use = next((e for e in _chain(error) if isinstance(e, OSError) and e.errno == errno.EADDRINUSE), None)
    if in_use is not None:
        what = str(error) if in_use is not error else "cannot listen"
        return f"{what}: {_port_taken(str(in_use))}"
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _port_taken(text: str) -> str:
    found = _PORT_IN_MESSAGE.search(text)
    holder = who_listens(int(found.group(1))) if found else None
    port = f"port {found.group(1)}" if found else "the port"
    return f"{port} is already in use" + (f" by {holder}" if holder else "")


def _database() -> str:
    with contextlib.suppress(Exception):  # the settings loaded once already; this only names the URL
        return redact(load_settings().database_url)
    return "(see ORDERPAY_DATABASE_URL)"
