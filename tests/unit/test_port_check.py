"""The port checks `orderpay dev` runs before it starts anything (real sockets on loopback)."""

from __future__ import annotations

import os
import socket

import pytest

from server.config import ConfigError, StartupError
from server.port_check import Binding, PortInUseError, can_bind, ensure_free, who_listens


@pytest.mark.parametrize("address", ["8080", "localhost", "127.0.0.1:http", "127.0.0.1:70000"])
def test_malformed_addresses_name_the_setting(address: str) -> None:
    with pytest.raises(ConfigError, match=rf"^ORDERPAY_GRPC_LISTEN: want HOST:PORT, got '{address}'$"):
        Binding.parse("gRPC", "ORDERPAY_GRPC_LISTEN", address)


def test_a_bare_port_means_loopback() -> None:
    assert Binding.parse("gRPC", "X", ":50051") == Binding("gRPC", "X", "127.0.0.1", 50051)


def test_a_held_port_names_its_holder() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not can_bind("127.0.0.1", port)
        assert (who_listens(port) or "").startswith(f"pid {os.getpid()} (")
        with pytest.raises(
            PortInUseError, match=rf"^port {port} \(sandbox, --sandbox-listen\) is already in use"
        ):
            ensure_free([Binding("sandbox", "--sandbox-listen", "127.0.0.1", port)])
    assert can_bind("127.0.0.1", port)


def test_ephemeral_ports_are_not_checked_and_free_ports_pass() -> None:
    ensure_free([Binding("gRPC", "A", "127.0.0.1", 0), Binding("notify", "B", "127.0.0.1", 0)])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: free again once closed
    ensure_free([Binding("gRPC", "A", "127.0.0.1", port)])


def test_an_address_of_another_host_is_a_startup_error() -> None:
    with pytest.raises(StartupError, match=r"^cannot bind 192\.0\.2\.1:8080 \(gRPC, A\): "):
        ensure_free([Binding("gRPC", "A", "192.0.2.1", 8080)])
