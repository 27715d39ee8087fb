"""Channels to the orderpay gRPC server, sync and `grpc.aio`, with the options a long-lived BFF needs.

Keepalive pings (every 30 s, only while calls are in flight) find dead connections (NAT and load
balancer idle timeouts) before a call hangs on one; an idle channel never pings, so the server's
default ping policy never answers GOAWAY "too_many_pings". gRPC's built-in retries are off: the
client retries itself, knowing which calls are safe to repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

KEEPALIVE_TIME_MS = 30_000
KEEPALIVE_TIMEOUT_MS = 10_000
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

ChannelOptions = list[tuple[str, int | str]]


@dataclass(frozen=True)
class TlsConfig:
    """Server verification (`root_certificates`; None = system roots) and, for mTLS, a client pair."""

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    # For tests and dev certificates issued to a name other than the dialled host.
    server_name_override: str | None = None

    @classmethod
    def from_files(
        cls,
        *,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        server_name_override: str | None = None,
    ) -> TlsConfig:
        if (cert is None) != (key is None):
            raise ValueError("mTLS needs both a client certificate and its key")
        return cls(
            root_certificates=_read(ca),
            certificate_chain=_read(cert),
            private_key=_read(key),
            server_name_override=server_name_override,
        )

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )


def channel_options(tls: TlsConfig | None = None) -> ChannelOptions:
    options: ChannelOptions = [
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        # Pinging an idle channel would break the server's ping policy; only ping while calls run.
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.enable_retries", 0),
    ]
    if tls is not None and tls.server_name_override:
        options.append(("grpc.ssl_target_name_override", tls.server_name_override))
    return options


def make_channel(target: str, *, tls: TlsConfig | None = None) -> grpc.Channel:
    """A sync channel to `target` (`host:port`), plaintext unless `tls` is given."""
    options = channel_options(tls)
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, tls.credentials(), options=options)


def make_aio_channel(target: str, *, tls: TlsConfig | None = None) -> grpc.aio.Channel:
    """The `grpc.aio` twin of `make_channel`; create it inside the event loop that will use it."""
    options = channel_options(tls)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, tls.credentials(), options=options)


def _read(path: str | Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()
