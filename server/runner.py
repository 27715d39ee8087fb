"""Process lifecycle for `orderpay serve`: build, start, wait for SIGTERM/SIGINT, stop gracefully."""

from __future__ import annotations

import signal
import threading

import structlog

from server.bootstrap import build_app
from server.config import load_settings
from server.log_setup import configure_logging
from server.rpc.server import create_grpc_server

log = structlog.get_logger("orderpay.serve")


def wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def serve(*, listen: str | None = None, load_catalogue: bool = True) -> int:
    settings = load_settings()
    if listen:
        settings = settings.with_overrides(grpc_listen=listen)
    configure_logging(settings.log_format, settings.log_level)
    app = build_app(settings)
    if load_catalogue:
        app.catalogue.load_file()
    grpc_server = create_grpc_server(settings, app.servicers())
    host = settings.grpc_listen.rsplit(":", 1)[0]
    log.info("grpc.listening", address=f"{host}:{grpc_server.port}")
    wait_for_signal()
    log.info("shutdown.begin", grace_s=settings.shutdown_grace_s)
    grpc_server.stop(settings.shutdown_grace_s)
    app.close()
    log.info("shutdown.done")
    return 0
