"""Bare servers the benchmarks compare against, each run in its own process:

- `grpc`: one unary method `/bench.Echo/Echo` answering a realistically sized `CreateOrderResponse`
  (every Order field set), served the way `orderpay serve` used to serve (sync `grpc.server`,
  32 threads): the yardstick the benchmark bars name.
- `grpc-aio`: the same answer from a `grpc.aio` server on one event loop, the way orderpay serves now.
- `http`: aiohttp answering `POST /echo` with 204 after the same signature check and AES-GCM
  decryption the sidecar does (B3's reference; `--keys-dir` is the bench's credentials bundle).

`python -m clients.bench.echo grpc|grpc-aio|http --port-file F [--keys-dir D]`; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent import futures
from datetime import UTC, datetime
from pathlib import Path

import grpc
from aiohttp import web
from google.protobuf import timestamp_pb2

from orderpay.v1 import order_pb2, order_service_pb2

ECHO_METHOD = "/bench.Echo/Echo"
GRPC_WORKERS = 32  # the thread-per-call design orderpay served with before grpc.aio
GRPC_MAX_CONCURRENT_RPCS = 256


def _timestamp() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime(2026, 11, 25, 9, 30, 15, 123456, tzinfo=UTC))
    return ts


def realistic_answer() -> bytes:
    """What CreateOrder answers: every field of an Order set to a typical value."""
    order = order_pb2.Order(
        order_id="ord_2bcdfea358a124621f88e6d0",
        out_trade_no="OP20261125093015a1b2c3d4e5f6",
        user_id="lt-0123456789-1234",
        product_id="vip-month",
        kind=order_pb2.PRODUCT_KIND_VIP_PLAN,
        quantity=1,
        total_fee=1800,
        description="VIP membership, 30 days",
        attach="bench",
        article_id="",
        status=order_pb2.ORDER_STATUS_UNPAID,
        fulfilment=order_pb2.FULFILMENT_PENDING,
        fulfilment_reason="",
        version=1,
        expires_at=_timestamp(),
        transaction_id="",
        paid_fee=0,
        refunded_fee=0,
        created_at=_timestamp(),
        updated_at=_timestamp(),
        request_id="k-0123456789-1234",
        legacy_status=0,
    )
    return order_service_pb2.CreateOrderResponse(order=order).SerializeToString()


ANSWER = realistic_answer()


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    del request, context
    return ANSWER


async def _echo_aio(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    del request, context
    return ANSWER


def _handler(behaviour: object) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "bench.Echo",
        {"Echo": grpc.unary_unary_rpc_method_handler(behaviour)},  # type: ignore[arg-type]
    )


def serve_grpc(port_file: Path) -> None:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=GRPC_WORKERS), maximum_concurrent_rpcs=GRPC_MAX_CONCURRENT_RPCS
    )
    server.add_generic_rpc_handlers((_handler(_echo),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_file.write_text(str(port))
    _wait_for_signal()
    server.stop(1.0).wait()


async def _serve_grpc_aio(port_file: Path) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_handler(_echo_aio),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(str(port))  # noqa: ASYNC240 - one tiny write before serving
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def serve_http(port_file: Path, keys_dir: Path | None) -> None:
    app = web.Application()
    if keys_dir is None:
        app.router.add_post("/echo", _no_content)
    else:
        app.router.add_post("/echo", _verifying(keys_dir))
    app.router.add_get("/healthz", _healthz)
    sock = _bound_socket()
    port_file.write_text(str(sock.getsockname()[1]))
    web.run_app(app, sock=sock, print=None, access_log=None, handle_signals=True)


async def _no_content(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=204)


def _verifying(keys_dir: Path) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The sidecar's own parser: RSA signature check against the platform key, then AES-256-GCM."""
    from server.wxpay.credentials import load_credentials  # noqa: PLC0415 - only this kind needs it
    from server.wxpay.notification import notification_parser  # noqa: PLC0415

    credentials = load_credentials(keys_dir)
    parse = notification_parser(credentials, credentials.verifier_keys(), 300)

    async def verify_and_decrypt(request: web.Request) -> web.Response:
        body = await request.read()
        parse(dict(request.headers), body, time.time())
        return web.Response(status=204)

    return verify_and_decrypt


async def _healthz(request: web.Request) -> web.Response:
    del request
    return web.Response(text="ok")


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
    parser.add_argument("kind", choices=("grpc", "grpc-aio", "http"))
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--keys-dir", type=Path, help="http: verify and decrypt with this bundle")
    args = parser.parse_args()
    if args.kind == "grpc":
        serve_grpc(args.port_file)
    elif args.kind == "grpc-aio":
        asyncio.run(_serve_grpc_aio(args.port_file))
    else:
        serve_http(args.port_file, args.keys_dir)


if __name__ == "__main__":
    main()
