"""The typed clients (sync and aio) against a scripted fake orderpay server on 127.0.0.1:0.

The fake is a real `grpc.server` serving every RPC of the contract through generic handlers: each
method answers from a per-method script (a reply, a rich-status failure, or a call that blocks) and
records what it received, so tests assert on what went over the wire rather than on client internals.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from clients import errors
from clients.aio_client import AsyncOrderPayClient
from clients.client import OrderPayClient
from orderpay.v1 import order_pb2, order_service_pb2, pay_service_pb2, vip_service_pb2
from tests.support.waiting import wait_until


@dataclass
class Fail:
    """Answer with rich status (ErrorInfo + BadRequest), or a bare status when `reason` is None."""

    code: grpc.StatusCode
    reason: str | None = None
    message: str = "scripted failure"
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Reply:
    message: Message
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Block:
    """Hold the call until `release` is set; record whether the client's deadline ended it first."""

    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Seen:
    method: str
    request: Any
    metadata: dict[str, str]
    time_remaining: float | None
    outcome: str = "answered"


Outcome = Fail | Reply | Block

SERVICES: tuple[tuple[ModuleType, str], ...] = (
    (order_service_pb2, "OrderService"),
    (pay_service_pb2, "PayService"),
    (vip_service_pb2, "VipService"),
)


class FakeOrderPay:
    def __init__(self) -> None:
        self._scripts: dict[str, deque[Outcome]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.seen: list[Seen] = []

    def script(self, method: str, *outcomes: Outcome) -> None:
        with self._lock:
            self._scripts[method].extend(outcomes)

    def calls(self, method: str) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if seen.method == method]

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        out = []
        for module, name in SERVICES:
            service = module.DESCRIPTOR.services_by_name[name]
            methods = {}
            for method in service.methods:
                request_type = getattr(module, method.input_type.name)
                response_type = getattr(module, method.output_type.name)
                methods[method.name] = grpc.unary_unary_rpc_method_handler(
                    partial(self._handle, method.name, response_type),
                    request_deserializer=request_type.FromString,
                    response_serializer=response_type.SerializeToString,
                )
            out.append(grpc.method_handlers_generic_handler(service.full_name, methods))
        return out

    def _handle(
        self,
        method: str,
        response_type: Callable[[], Message],
        request: Message,
        context: grpc.ServicerContext,
    ) -> Message:
        seen = Seen(method, request, dict(context.invocation_metadata()), context.time_remaining())  # type: ignore[arg-type]
        with self._lock:
            self.seen.append(seen)
            script = self._scripts[method]
            outcome = script.popleft() if script else Reply(response_type())
        if isinstance(outcome, Fail):
            context.abort_with_status(rpc_status.to_status(_rich_status(outcome)))
        if isinstance(outcome, Block):
            # Poll the context rather than the clock: the record says which ended the call.
            while not outcome.release.wait(0.01):
                if not context.is_active():
                    seen.outcome = "client deadline"
                    return response_type()
            seen.outcome = "released"
            return response_type()
        assert isinstance(outcome, Reply)
        context.send_initial_metadata(outcome.headers)
        return outcome.message


def _rich_status(fail: Fail) -> status_pb2.Status:
    status = status_pb2.Status(code=fail.code.value[0], message=fail.message)
    if fail.reason is None:
        return status
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=fail.reason, domain="orderpay", metadata=fail.metadata))
    status.details.append(info)
    if fail.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in fail.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        status.details.append(packed)
    return status


@dataclass
class Served:
    fake: FakeOrderPay
    target: str
    server: grpc.Server


@pytest.fixture
def served() -> Iterator[Served]:
    fake = FakeOrderPay()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers(fake.handlers())
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield Served(fake, f"127.0.0.1:{port}", server)
    finally:
        for seen_block in _blocks(fake):
            seen_block.release.set()
        server.stop(None)


def _blocks(fake: FakeOrderPay) -> list[Block]:
    return [o for script in fake._scripts.values() for o in script if isinstance(o, Block)]


@pytest.fixture
def token() -> str:
    return f"tok-{uuid.uuid4().hex}"


@pytest.fixture
def client(served: Served, token: str) -> Iterator[OrderPayClient]:
    with OrderPayClient(served.target, token, backoff_base=0.001, default_timeout=5.0) as c:
        yield c


def _order(order_id: str | None = None, **fields: Any) -> order_pb2.Order:
    return order_pb2.Order(order_id=order_id or uuid.uuid4().hex, **fields)


# Every ErrorInfo reason (server/rpc/status.py): (reason, code, class, metadata the server attaches).
REASONS: list[tuple[str, grpc.StatusCode, type[errors.OrderPayError], dict[str, str]]] = [
    ("INVALID_ARGUMENT", grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument, {}),
    ("UNAUTHENTICATED", grpc.StatusCode.UNAUTHENTICATED, errors.Unauthenticated, {}),
    ("PERMISSION_DENIED", grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied, {}),
    ("ORDER_NOT_FOUND", grpc.StatusCode.NOT_FOUND, errors.OrderNotFound, {"order_id": "o-1"}),
    ("PRODUCT_NOT_FOUND", grpc.StatusCode.NOT_FOUND, errors.ProductNotFound, {}),
    ("REFUND_NOT_FOUND", grpc.StatusCode.NOT_FOUND, errors.RefundNotFound, {}),
    ("IDEMPOTENCY_KEY_REUSED", grpc.StatusCode.ALREADY_EXISTS, errors.IdempotencyKeyReused, {}),
    (
        "UNPAID_ORDER_EXISTS",
        grpc.StatusCode.FAILED_PRECONDITION,
        errors.UnpaidOrderExists,
        {"order_id": "o-9"},
    ),
    ("OUT_OF_STOCK", grpc.StatusCode.FAILED_PRECONDITION, errors.OutOfStock, {}),
    ("INVALID_STATE_TRANSITION", grpc.StatusCode.FAILED_PRECONDITION, errors.InvalidStateTransition, {}),
    ("ORDER_NOT_PAYABLE", grpc.StatusCode.FAILED_PRECONDITION, errors.OrderNotPayable, {}),
    ("REFUND_EXCEEDS_PAID", grpc.StatusCode.FAILED_PRECONDITION, errors.RefundExceedsPaid, {}),
    (
        "PROVIDER_REJECTED",
        grpc.StatusCode.FAILED_PRECONDITION,
        errors.ProviderRejected,
        {"provider_code": "NOTENOUGH"},
    ),
    ("VERSION_CONFLICT", grpc.StatusCode.ABORTED, errors.VersionConflict, {"current_version": "7"}),
    ("PROVIDER_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE, errors.ProviderUnavailable, {}),
    ("OVERLOADED", grpc.StatusCode.RESOURCE_EXHAUSTED, errors.Overloaded, {}),
    ("TRANSIENT", grpc.StatusCode.UNAVAILABLE, errors.Transient, {}),
    ("INTERNAL", grpc.StatusCode.INTERNAL, errors.Internal, {}),
]


@pytest.mark.parametrize(("reason", "code", "cls", "metadata"), REASONS, ids=[r[0] for r in REASONS])
def test_each_reason_raises_its_class_with_details(
    client: OrderPayClient,
    served: Served,
    reason: str,
    code: grpc.StatusCode,
    cls: type[errors.OrderPayError],
    metadata: dict[str, str],
) -> None:
    violations = [("quantity", "must be between 1 and 99")] if reason == "INVALID_ARGUMENT" else []
    # Scripted max_attempts times so retryable codes fail the same way on every attempt.
    fail = Fail(code, reason, f"{reason} happened", metadata, violations)
    served.fake.script("UpdateOrderStatus", fail, fail, fail)

    with pytest.raises(cls) as caught:
        client.update_order_status("o-1", 3, "PAID", "manual")

    error = caught.value
    assert type(error) is cls
    assert (error.code, error.reason, error.message) == (code, reason, f"{reason} happened")
    assert error.metadata == metadata
    assert error.field_violations == violations
    sent = served.fake.calls("UpdateOrderStatus")[0].metadata["x-request-id"]
    assert error.trace_id == sent


def test_typed_properties_read_metadata(client: OrderPayClient, served: Served) -> None:
    served.fake.script(
        "CreateOrder",
        Fail(grpc.StatusCode.FAILED_PRECONDITION, "UNPAID_ORDER_EXISTS", metadata={"order_id": "o-42"}),
    )
    served.fake.script(
        "AttachArticle", Fail(grpc.StatusCode.ABORTED, "VERSION_CONFLICT", metadata={"current_version": "9"})
    )
    served.fake.script(
        "CreatePayment",
        Fail(
            grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_REJECTED", metadata={"provider_code": "ORDERPAID"}
        ),
    )

    with pytest.raises(errors.UnpaidOrderExists) as unpaid:
        client.create_order("u-1", "vip-month")
    with pytest.raises(errors.VersionConflict) as conflict:
        client.attach_article("o-1", "a-1", expected_version=8)
    with pytest.raises(errors.ProviderRejected) as rejected:
        client.create_payment("o-1", "NATIVE")

    assert unpaid.value.order_id == "o-42"
    assert conflict.value.current_version == 9
    assert rejected.value.provider_code == "ORDERPAID"


def test_unknown_reason_falls_back_to_the_class_of_its_code(client: OrderPayClient, served: Served) -> None:
    served.fake.script(
        "CloseOrder", Fail(grpc.StatusCode.FAILED_PRECONDITION, "SOMETHING_NEW", metadata={"k": "v"})
    )
    served.fake.script("SyncPayment", Fail(grpc.StatusCode.DATA_LOSS, "LOST_IT"))

    with pytest.raises(errors.FailedPrecondition) as category:
        client.close_order("o-1")
    with pytest.raises(errors.OrderPayError) as root:
        client.sync_payment("o-1")

    assert type(category.value) is errors.FailedPrecondition
    assert (category.value.reason, category.value.metadata) == ("SOMETHING_NEW", {"k": "v"})
    assert type(root.value) is errors.OrderPayError
    assert (root.value.code, root.value.reason) == (grpc.StatusCode.DATA_LOSS, "LOST_IT")


def test_status_without_details_falls_back_to_the_code(client: OrderPayClient, served: Served) -> None:
    served.fake.script("GetRefund", Fail(grpc.StatusCode.NOT_FOUND, reason=None, message="no such refund"))

    with pytest.raises(errors.NotFound) as caught:
        client.get_refund("r-1")

    assert type(caught.value) is errors.NotFound
    assert (caught.value.reason, caught.value.message) == ("NOT_FOUND", "no such refund")


def test_unavailable_is_retried_then_succeeds_with_one_request_id(
    client: OrderPayClient, served: Served
) -> None:
    down = Fail(grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE")
    order = _order(status=order_pb2.ORDER_STATUS_UNPAID)
    served.fake.script("CreateOrder", down, down, Reply(order_service_pb2.CreateOrderResponse(order=order)))

    result = client.create_order("u-1", "vip-month", 2)

    attempts = served.fake.calls("CreateOrder")
    assert result.order == order
    assert len(attempts) == 3
    assert len({seen.request.request_id for seen in attempts}) == 1
    assert len({seen.metadata["x-request-id"] for seen in attempts}) == 1
    assert attempts[0].request.request_id != ""


def test_unavailable_gives_up_after_max_attempts(served: Served, token: str) -> None:
    down = Fail(grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE")
    served.fake.script("RefundOrder", down, down, down, down, down)

    with (
        OrderPayClient(served.target, token, max_attempts=4, backoff_base=0.001) as client,
        pytest.raises(errors.ProviderUnavailable),
    ):
        client.refund_order("o-1", "r-1", 100, "customer asked")

    assert len(served.fake.calls("RefundOrder")) == 4


def test_version_conflict_is_not_retried_on_guarded_updates(client: OrderPayClient, served: Served) -> None:
    conflict = Fail(grpc.StatusCode.ABORTED, "VERSION_CONFLICT", metadata={"current_version": "5"})
    served.fake.script("UpdateOrderStatus", conflict, Reply(order_service_pb2.UpdateOrderStatusResponse()))
    served.fake.script("AttachArticle", conflict, Reply(order_service_pb2.AttachArticleResponse()))

    with pytest.raises(errors.VersionConflict):
        client.update_order_status("o-1", 4, order_pb2.ORDER_STATUS_CLOSED, "ops")
    with pytest.raises(errors.VersionConflict):
        client.attach_article("o-1", "a-1", 4)

    assert len(served.fake.calls("UpdateOrderStatus")) == 1
    assert len(served.fake.calls("AttachArticle")) == 1


def test_aborted_is_retried_on_idempotent_reads(client: OrderPayClient, served: Served) -> None:
    order = _order()
    served.fake.script(
        "GetOrder",
        Fail(grpc.StatusCode.ABORTED, "VERSION_CONFLICT"),
        Reply(order_service_pb2.GetOrderResponse(order=order)),
    )

    assert client.get_order(order.order_id) == order
    assert len(served.fake.calls("GetOrder")) == 2


def test_invalid_argument_is_never_retried(client: OrderPayClient, served: Served) -> None:
    invalid = Fail(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", violations=[("user_id", "empty")])
    served.fake.script("CreateOrder", invalid, Reply(order_service_pb2.CreateOrderResponse()))

    with pytest.raises(errors.InvalidArgument) as caught:
        client.create_order("", "vip-month")

    assert caught.value.field_violations == [("user_id", "empty")]
    assert len(served.fake.calls("CreateOrder")) == 1


def test_overloaded_is_not_retried(client: OrderPayClient, served: Served) -> None:
    busy = Fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
    served.fake.script("ListPlans", busy, Reply(vip_service_pb2.ListPlansResponse()))

    with pytest.raises(errors.Overloaded):
        client.list_plans()

    assert len(served.fake.calls("ListPlans")) == 1


def test_unreachable_server_raises_unavailable(served: Served, token: str) -> None:
    served.server.stop(None)

    with (
        OrderPayClient(
            served.target, token, max_attempts=2, backoff_base=0.001, default_timeout=2.0
        ) as client,
        pytest.raises(errors.Unavailable) as caught,
    ):
        client.get_membership("u-1")

    assert type(caught.value) is errors.Unavailable
    assert caught.value.reason == "UNAVAILABLE"


def test_bearer_token_and_request_ids_are_sent(client: OrderPayClient, served: Served, token: str) -> None:
    trace_id = f"trace-{uuid.uuid4().hex}"
    client.get_membership("u-1", trace_id=trace_id)
    client.get_membership("u-1")
    client.get_membership("u-1")

    first, second, third = served.fake.calls("GetMembership")
    assert {seen.metadata["authorization"] for seen in (first, second, third)} == {f"Bearer {token}"}
    assert first.metadata["x-request-id"] == trace_id
    assert len(second.metadata["x-request-id"]) == 32
    assert second.metadata["x-request-id"] != third.metadata["x-request-id"]


def test_caller_request_id_is_the_idempotency_key(client: OrderPayClient, served: Served) -> None:
    key = uuid.uuid4().hex

    client.create_order("u-1", "vip-month", request_id=key, description="a month", attach="ref-1")

    (seen,) = served.fake.calls("CreateOrder")
    assert (seen.request.request_id, seen.request.description, seen.request.attach) == (
        key,
        "a month",
        "ref-1",
    )


@pytest.mark.parametrize(
    ("headers", "replayed", "deduplicated"),
    [
        ((), False, False),
        ((("x-idempotent-replayed", "true"),), True, False),
        ((("x-deduplicated", "unpaid-order"),), False, True),
    ],
)
def test_replay_flags_come_from_response_headers(
    client: OrderPayClient,
    served: Served,
    headers: tuple[tuple[str, str], ...],
    replayed: bool,
    deduplicated: bool,
) -> None:
    echoed = (("x-request-id", "echoed-by-server"), *headers)
    served.fake.script("CreateOrder", Reply(order_service_pb2.CreateOrderResponse(order=_order()), echoed))

    result = client.create_order("u-1", "vip-month")

    assert (result.replayed, result.deduplicated) == (replayed, deduplicated)
    assert result.trace_id == "echoed-by-server"


def test_deadline_ends_a_blocked_call_with_a_typed_error(served: Served, token: str) -> None:
    block = Block()
    served.fake.script("SyncPayment", block)

    with (
        # Long enough that a loaded machine still delivers the call before the deadline passes.
        OrderPayClient(served.target, token, default_timeout=1.5) as client,
        pytest.raises(errors.DeadlineExceeded) as caught,
    ):
        client.sync_payment("o-1")

    (seen,) = served.fake.calls("SyncPayment")
    assert seen.time_remaining is not None
    assert 0 < seen.time_remaining <= 1.6  # the client's deadline, give or take gRPC's rounding
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: seen.outcome != "answered")
    assert seen.outcome == "client deadline"


def test_long_poll_deadline_outlasts_wait_ms(client: OrderPayClient, served: Served) -> None:
    client.get_order("o-1", wait_ms=3000)

    (seen,) = served.fake.calls("GetOrder")
    assert seen.request.wait_ms == 3000
    assert seen.time_remaining is not None
    assert seen.time_remaining > 5.0


def test_iter_orders_follows_page_tokens(client: OrderPayClient, served: Served) -> None:
    first, second, third = _order(), _order(), _order()
    served.fake.script(
        "ListOrders",
        Reply(order_service_pb2.ListOrdersResponse(orders=[first, second], next_page_token="page-2")),
        Reply(order_service_pb2.ListOrdersResponse(orders=[third])),
    )

    orders = list(client.iter_orders("u-7", page_size=2, status="UNPAID"))

    assert [o.order_id for o in orders] == [first.order_id, second.order_id, third.order_id]
    requests = [seen.request for seen in served.fake.calls("ListOrders")]
    assert [r.page_token for r in requests] == ["", "page-2"]
    assert {(r.user_id, r.page_size, r.status) for r in requests} == {
        ("u-7", 2, order_pb2.ORDER_STATUS_UNPAID)
    }


def test_requests_carry_the_callers_arguments(client: OrderPayClient, served: Served) -> None:
    payment = pay_service_pb2.Payment(order_id="o-1", prepay_id="wx-1", code_url="weixin://wxpay/x")
    served.fake.script("CreatePayment", Reply(pay_service_pb2.CreatePaymentResponse(payment=payment)))

    got = client.create_payment("o-1", "jsapi", payer_openid="openid-1", client_ip="127.0.0.1")
    client.refund_order("o-1", "r-1", 50, "broken")
    client.list_orders("u-1")

    assert got == payment
    (pay,) = served.fake.calls("CreatePayment")
    assert (pay.request.channel, pay.request.payer_openid) == (pay_service_pb2.PAY_CHANNEL_JSAPI, "openid-1")
    (refund,) = served.fake.calls("RefundOrder")
    assert (refund.request.out_refund_no, refund.request.amount, refund.request.reason) == (
        "r-1",
        50,
        "broken",
    )
    (listing,) = served.fake.calls("ListOrders")
    assert not listing.request.HasField("status")


# grpc.aio: the same decoding and retry rules.


@pytest.mark.parametrize(("reason", "code", "cls", "metadata"), REASONS, ids=[r[0] for r in REASONS])
async def test_aio_each_reason_raises_its_class(
    served: Served,
    token: str,
    reason: str,
    code: grpc.StatusCode,
    cls: type[errors.OrderPayError],
    metadata: dict[str, str],
) -> None:
    violations = [("amount", "must be positive")] if reason == "INVALID_ARGUMENT" else []
    fail = Fail(code, reason, f"{reason} happened", metadata, violations)
    served.fake.script("AttachArticle", fail, fail, fail)

    async with AsyncOrderPayClient(served.target, token, backoff_base=0.001) as client:
        with pytest.raises(cls) as caught:
            await client.attach_article("o-1", "a-1", 2)

    error = caught.value
    assert type(error) is cls
    assert (error.code, error.reason, error.metadata, error.field_violations) == (
        code,
        reason,
        metadata,
        violations,
    )
    assert error.trace_id == served.fake.calls("AttachArticle")[0].metadata["x-request-id"]


async def test_aio_status_without_details_falls_back_to_the_code(served: Served, token: str) -> None:
    served.fake.script(
        "GetRefund", Fail(grpc.StatusCode.PERMISSION_DENIED, reason=None, message="admins only")
    )

    async with AsyncOrderPayClient(served.target, token) as client:
        with pytest.raises(errors.PermissionDenied) as caught:
            await client.get_refund("r-1")

    assert (caught.value.reason, caught.value.message) == ("PERMISSION_DENIED", "admins only")


async def test_aio_unavailable_is_retried_with_one_request_id(served: Served, token: str) -> None:
    down = Fail(grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE")
    order = _order()
    headers = (("x-idempotent-replayed", "true"),)
    served.fake.script(
        "CreateOrder", down, Reply(order_service_pb2.CreateOrderResponse(order=order), headers)
    )

    async with AsyncOrderPayClient(served.target, token, backoff_base=0.001) as client:
        result = await client.create_order("u-1", "vip-month")

    attempts = served.fake.calls("CreateOrder")
    assert (result.order, result.replayed) == (order, True)
    assert len(attempts) == 2
    assert attempts[0].request.request_id == attempts[1].request.request_id
    assert {seen.metadata["authorization"] for seen in attempts} == {f"Bearer {token}"}


async def test_aio_version_conflict_is_not_retried(served: Served, token: str) -> None:
    conflict = Fail(grpc.StatusCode.ABORTED, "VERSION_CONFLICT", metadata={"current_version": "3"})
    served.fake.script("UpdateOrderStatus", conflict, Reply(order_service_pb2.UpdateOrderStatusResponse()))

    async with AsyncOrderPayClient(served.target, token, backoff_base=0.001) as client:
        with pytest.raises(errors.VersionConflict) as caught:
            await client.update_order_status("o-1", 2, "CLOSED", "ops")

    assert caught.value.current_version == 3
    assert len(served.fake.calls("UpdateOrderStatus")) == 1


async def test_aio_iter_orders_follows_page_tokens(served: Served, token: str) -> None:
    first, second = _order(), _order()
    served.fake.script(
        "ListOrders",
        Reply(order_service_pb2.ListOrdersResponse(orders=[first], next_page_token="p2")),
        Reply(order_service_pb2.ListOrdersResponse(orders=[second])),
    )

    async with AsyncOrderPayClient(served.target, token) as client:
        ids = [order.order_id async for order in client.iter_orders("u-1", page_size=1)]

    assert ids == [first.order_id, second.order_id]
