"""Prometheus metrics, one registry per process (scraped from the metrics listener's /metrics).

Counters carry no `_created` series: `orderpay_orders_created{outcome="created"} 1.79e+09` is a Unix
timestamp that reads like billions of orders. The process's own CPU, memory and open file descriptors
(`process_*`) are in the same registry, so one scrape has both.
"""

from __future__ import annotations

from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)

disable_created_metrics()  # type: ignore[no-untyped-call]  # process-wide; read at every scrape
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ...


def _version() -> str:
    try:
        return metadata.version("orderpay")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


BUILD = Info("orderpay_build", "The orderpay version this process runs", registry=REGISTRY)
BUILD.info({"version": _version()})

RPC_REQUESTS = Counter(
    "orderpay_rpc_requests", "gRPC calls by method and code", ["method", "code"], registry=REGISTRY
)
RPC_LATENCY = Histogram(
    "orderpay_rpc_latency_seconds",
    "gRPC call latency",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
ORDERS = Counter(
    "orderpay_orders",
    "CreateOrder outcomes (created, replayed, deduplicated) by the order's configured merchant account",
    ["account", "outcome"],
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "orderpay_notifications",
    "Notifications by merchant account (its notify URL's; `unknown` for a name not configured) and outcome",
    ["account", "outcome"],
    registry=REGISTRY,
)
FULFILMENT = Counter(
    "orderpay_fulfilment_attempts", "Fulfilment attempts", ["kind", "outcome"], registry=REGISTRY
)
PROVIDER_CALLS = Counter(
    "orderpay_provider_calls",
    "WeChat Pay calls (payments, refunds, bills, keys) by the merchant account that signs them",
    ["account", "operation", "outcome"],
    registry=REGISTRY,
)
PROVIDER_LATENCY = Histogram(
    "orderpay_provider_latency_seconds", "WeChat Pay call latency", ["operation"], registry=REGISTRY
)
PROVIDER_CIRCUIT = Gauge(
    "orderpay_provider_circuit_open", "1 while the WeChat Pay breaker is open", registry=REGISTRY
)
JOB_LAG = Gauge("orderpay_job_lag_seconds", "Age of the oldest due item per job", ["job"], registry=REGISTRY)
JOB_RUNS = Counter("orderpay_job_runs", "Job runs by outcome", ["job", "outcome"], registry=REGISTRY)
CONNECTIONS_SHED = Counter(
    "orderpay_http_connections_shed",
    "HTTP connections (sidecar, metrics, console) closed for being too slow or over the cap",
    ["reason"],
    registry=REGISTRY,
)
CONSOLE_SIGNIN_FAILED = Counter(
    "orderpay_console_signin_failed",
    "Console sign-ins refused (wrong token, or throttled)",
    registry=REGISTRY,
)
VERIFICATIONS = Counter(
    "orderpay_wxpay_verifications",
    "WeChat Pay signature verifications (responses and notifications) by key kind and outcome",
    ["kind", "outcome"],
    registry=REGISTRY,
)
CERTIFICATE_EXPIRY = Gauge(
    "orderpay_wxpay_certificate_expiry_seconds",
    "Seconds until each known WeChat Pay platform certificate expires",
    ["serial"],
    registry=REGISTRY,
)
CERTIFICATES_EXPIRING = Gauge(
    "orderpay_wxpay_certificates_expiring",
    "Known WeChat Pay platform certificates expiring within 10 days",
    registry=REGISTRY,
)
# `account` labels: the configured merchant accounts' names (issue 18), never a value from the wire, so
# the label's cardinality is the configuration's.
RECON_EXCEPTIONS = Gauge(
    "orderpay_recon_exceptions",
    "Open reconciliation exceptions by merchant account and kind",
    ["account", "kind"],
    registry=REGISTRY,
)
RECON_LAST_DAY = Gauge(
    "orderpay_recon_last_reconciled_day",
    "The last Beijing day each merchant account's bills were reconciled (unix time of its 00:00 +08:00)",
    ["account"],
    registry=REGISTRY,
)
WAITERS = Gauge("orderpay_waiters_parked", "GetOrder(wait_ms) calls parked right now", registry=REGISTRY)
WAITER_ANSWERS = Counter(
    "orderpay_waiter_answers",
    "GetOrder(wait_ms) answers by what ended the wait: signal, timeout, shutdown, at_once (decided already)",
    ["by"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge("orderpay_rpc_in_flight", "Calls holding an admission slot", registry=REGISTRY)
OVERLOADED = Counter("orderpay_rpc_overloaded", "Calls refused by admission control", registry=REGISTRY)
DB_READS = Counter(
    "orderpay_db_operator_reads",
    "Operator reads (admin API, console) by where they ran: standby, or primary_fallback (standby failing)",
    ["route"],
    registry=REGISTRY,
)
DB_READ_STANDBY_UP = Gauge(
    "orderpay_db_read_standby_up",
    "1 while ORDERPAY_DATABASE_READ_URL's standby serves reads",
    registry=REGISTRY,
)
