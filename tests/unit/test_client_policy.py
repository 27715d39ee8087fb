"""Retry rules, response headers, enum arguments and channel options of the typed clients."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from clients import errors, requests
from clients.calls import ResponseHeaders, RetryPolicy, order_status, pay_channel
from clients.channel import TlsConfig, channel_options
from orderpay.v1 import order_pb2, pay_service_pb2

UNAVAILABLE = errors.ProviderUnavailable("down")
CONFLICT = errors.VersionConflict("stale")


@pytest.mark.parametrize(
    ("error", "retry_aborted", "retried"),
    [
        (UNAVAILABLE, False, True),
        (errors.Unavailable("transport"), False, True),
        (CONFLICT, True, True),
        (CONFLICT, False, False),
        (errors.InvalidArgument("bad"), True, False),
        (errors.Overloaded("busy"), True, False),
        (errors.DeadlineExceeded("late"), True, False),
        (errors.Internal("boom"), True, False),
    ],
)
def test_only_retry_safe_failures_are_retried(
    error: errors.OrderPayError, retry_aborted: bool, retried: bool
) -> None:
    delay = RetryPolicy().delay_before_retry(error, 1, retry_aborted=retry_aborted, remaining=10.0)

    assert (delay is not None) == retried


def test_attempts_stop_at_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)

    delays = [
        policy.delay_before_retry(UNAVAILABLE, n, retry_aborted=False, remaining=10.0) for n in (1, 2, 3)
    ]

    assert delays[0] is not None
    assert delays[1] is not None
    assert delays[2] is None


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=20, backoff_base=0.1, backoff_cap=0.4)

    for attempt, step in ((1, 0.1), (2, 0.2), (3, 0.4), (10, 0.4)):
        delay = policy.delay_before_retry(UNAVAILABLE, attempt, retry_aborted=False, remaining=10.0)
        assert delay is not None
        assert step / 2 <= delay <= step


def test_no_retry_that_would_outlive_the_deadline() -> None:
    policy = RetryPolicy(backoff_base=1.0)

    assert policy.delay_before_retry(UNAVAILABLE, 1, retry_aborted=False, remaining=0.1) is None


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_response_headers_are_parsed() -> None:
    headers = ResponseHeaders.parse(
        [("x-request-id", "srv"), ("x-idempotent-replayed", "true"), ("x-deduplicated", "unpaid-order")],
        "sent",
    )

    assert headers == ResponseHeaders(trace_id="srv", replayed=True, deduplicated=True)
    assert ResponseHeaders.parse(None, "sent") == ResponseHeaders(trace_id="sent")


def test_enum_arguments_accept_short_names() -> None:
    assert order_status("paid") == order_pb2.ORDER_STATUS_PAID
    assert order_status(order_pb2.ORDER_STATUS_CLOSED) == order_pb2.ORDER_STATUS_CLOSED
    assert pay_channel("Native") == pay_service_pb2.PAY_CHANNEL_NATIVE
    with pytest.raises(ValueError, match="PAY_CHANNEL_ALIPAY"):
        pay_channel("alipay")


def test_long_poll_holds_the_call_for_the_wait() -> None:
    assert requests.get_order("o-1").hold_s == 0.0
    assert requests.get_order("o-1", wait_ms=2500).hold_s == 2.5


def test_channel_options_disable_grpc_retries_and_set_keepalive() -> None:
    options = dict(channel_options())

    assert options["grpc.enable_retries"] == 0
    assert options["grpc.keepalive_time_ms"] > options["grpc.keepalive_timeout_ms"] > 0
    assert "grpc.ssl_target_name_override" not in options
    overridden = dict(channel_options(TlsConfig(server_name_override="orderpay.test")))
    assert overridden["grpc.ssl_target_name_override"] == "orderpay.test"


def test_tls_config_reads_files_and_needs_a_full_client_pair(tmp_path: Path) -> None:
    ca, cert, key = tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "k.pem"
    for path in (ca, cert, key):
        path.write_bytes(path.name.encode())

    tls = TlsConfig.from_files(ca=ca, cert=cert, key=key)

    assert (tls.root_certificates, tls.certificate_chain, tls.private_key) == (b"ca.pem", b"c.pem", b"k.pem")
    assert isinstance(TlsConfig.from_files(ca=ca).credentials(), grpc.ChannelCredentials)
    with pytest.raises(ValueError, match="both"):
        TlsConfig.from_files(cert=cert)
