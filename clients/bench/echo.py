"""Bare servers the benchmarks compare against, each run in its own process:

- `grpc`: one unary method `/bench.Echo/Echo` that returns the request bytes, served the way
  `orderpay serve` serves (sync `grpc.server`, the same thread-pool size and concurrency limit), so the
  ratio isolates what orderpay does per call, not the choice of server flavour.
- `http`: aiohttp answering `POST /echo` with 204 after reading the body (B3's reference).

`python -m clients.bench.echo grpc|http --port-file F`; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import signal
import socket
import threading
from concurrent import futures
from pathlib import Path

import grpc
from aiohttp import web

ECHO_METHOD = "/bench.Echo/Echo"
GRPC_WORKERS = 32  # server.config.Settings.grpc_workers
GRPC_MAX_CONCURRENT_RPCS = 256  # server.config.Settings.grpc_max_concurrent_rpcs


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    del context
    return request


def serve_grpc(port_file: Path) -> None:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=GRPC_WORKERS), maximum_concurrent_rpcs=GRPC_MAX_CONCURRENT_RPCS
    )
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_file.write_text(str(port))
    _wait_for_signal()
    server.stop(1.0).wait()


async def _no_content(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=204)


async def _healthz(request: web.Request) -> web.Response:
    del request
    return web.Response(text="ok")


def serve_http(port_file: Path) -> None:
    app = web.Application()
    app.router.add_post("/echo", _no_content)
    app.router.add_get("/healthz", _healthz)

    sock = _bound_socket()
    port_file.write_text(str(sock.getsockname()[1]))
    web.run_app(app, sock=sock, print=None, access_log=None, handle_signals=True)


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m clients.bench.echo")
    parser.add_argument("kind", choices=("grpc", "http"))
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args()
    if args.kind == "grpc":
        serve_grpc(args.port_file)
    else:
        serve_http(args.port_file)


if __name__ == "__main__":
    main()
