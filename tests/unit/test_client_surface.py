"""The sync and async clients are one surface: same methods, same signatures, same request builders."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from clients import requests
from clients.aio_client import AsyncOrderPayClient
from clients.client import OrderPayClient

# What only the transport changes: blocking iterator vs async iterator.
ASYNC_SPELLING = {"AsyncIterator[": "Iterator["}
PER_CALL_OPTIONS = ("self", "trace_id", "timeout")


def _public(cls: type) -> dict[str, Callable[..., Any]]:
    return {name: fn for name, fn in vars(cls).items() if callable(fn) and not name.startswith("_")}


def _signature(fn: Callable[..., Any], *, unasync: bool = False) -> str:
    text = str(inspect.signature(fn))
    for async_form, sync_form in ASYNC_SPELLING.items() if unasync else ():
        text = text.replace(async_form, sync_form)
    return text


def test_both_clients_have_the_same_public_methods() -> None:
    assert sorted(_public(OrderPayClient)) == sorted(_public(AsyncOrderPayClient))
    assert len(_public(OrderPayClient)) >= 14  # 12 RPCs, iter_orders, close


def test_signatures_match_method_by_method() -> None:
    sync, aio = _public(OrderPayClient), _public(AsyncOrderPayClient)
    mismatched = {
        name: (_signature(sync[name]), _signature(aio[name]))
        for name in sync
        if _signature(sync[name]) != _signature(aio[name], unasync=True)
    }
    assert mismatched == {}
    assert str(inspect.signature(OrderPayClient.__init__)).replace("grpc.Channel", "grpc.aio.Channel") == str(
        inspect.signature(AsyncOrderPayClient.__init__)
    )


def test_async_methods_are_awaitable_and_sync_ones_are_not() -> None:
    for name, fn in _public(AsyncOrderPayClient).items():
        expected = inspect.isasyncgenfunction if name == "iter_orders" else inspect.iscoroutinefunction
        assert expected(fn), name
    for name, fn in _public(OrderPayClient).items():
        assert not inspect.iscoroutinefunction(fn), name
        assert not inspect.isasyncgenfunction(fn), name


def test_every_rpc_method_is_built_by_the_shared_request_builder() -> None:
    """Each RPC method takes exactly its builder's parameters plus the per-call options."""
    for name, fn in _public(OrderPayClient).items():
        builder = getattr(requests, name, None)
        if builder is None:
            assert name in {"iter_orders", "close"}, f"{name} has no builder in clients.requests"
            continue
        own = [p for p in inspect.signature(fn).parameters.values() if p.name not in PER_CALL_OPTIONS]
        assert own == list(inspect.signature(builder).parameters.values()), name
        for client in (OrderPayClient, AsyncOrderPayClient):
            source = inspect.getsource(getattr(client, name))
            assert f"requests.{name}(" in source, f"{client.__name__}.{name} builds its own request"
