"""Which start-up failures become one line, and what the line says (real sockets for the holder)."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator

import peewee as pw
import pytest

from server.config import ConfigError
from server.startup import explain
from server.wxpay.errors import CredentialsError


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_our_own_errors_are_their_message() -> None:
    assert explain(ConfigError("ORDERPAY_X: bad")) == "ORDERPAY_X: bad"
    assert explain(CredentialsError("/k: need merchant.json")) == "/k: need merchant.json"


def test_a_sidecar_that_cannot_bind_names_the_port_and_its_holder(held_port: int) -> None:
    cause = OSError(
        errno.EADDRINUSE,
        f"error while attempting to bind on address ('127.0.0.1', {held_port}): address already in use",
    )
    error = RuntimeError(f"notify sidecar failed to start on 127.0.0.1:{held_port}")
    error.__cause__ = cause  # as `raise ... from` leaves it
    line = explain(error) or ""
    assert line == (
        f"notify sidecar failed to start on 127.0.0.1:{held_port}: "
        f"port {held_port} is already in use by pid {os.getpid()} ({line.rsplit(' (', 1)[-1]}"
    )


def test_grpc_bind_failure(held_port: int) -> None:
    error = RuntimeError(
        f"Failed to bind to address 127.0.0.1:{held_port}; set GRPC_VERBOSITY=debug environment variable"
    )
    line = explain(error) or ""
    where = f"127.0.0.1:{held_port} (ORDERPAY_GRPC_LISTEN)"
    assert line.startswith(
        f"gRPC cannot listen on {where}: port {held_port} is already in use by pid {os.getpid()}"
    )


def test_database_faults_name_the_variable() -> None:
    line = explain(pw.OperationalError('connection to server at "127.0.0.1", port 5999 failed\nmore detail'))
    assert line is not None
    assert line.endswith('(ORDERPAY_DATABASE_URL): connection to server at "127.0.0.1", port 5999 failed')


def test_anything_else_keeps_its_traceback() -> None:
    assert explain(KeyError("bug")) is None
    assert explain(RuntimeError("something else")) is None
