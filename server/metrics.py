"""Prometheus metrics, one registry per process (scraped from the sidecar's /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

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
    "orderpay_orders", "CreateOrder outcomes: created, replayed, deduplicated", ["outcome"], registry=REGISTRY
)
NOTIFICATIONS = Counter("orderpay_notifications", "Notifications by outcome", ["outcome"], registry=REGISTRY)
FULFILMENT = Counter(
    "orderpay_fulfilment_attempts", "Fulfilment attempts", ["kind", "outcome"], registry=REGISTRY
)
PROVIDER_CALLS = Counter(
    "orderpay_provider_calls", "WeChat Pay calls", ["operation", "outcome"], registry=REGISTRY
)
PROVIDER_LATENCY = Histogram(
    "orderpay_provider_latency_seconds", "WeChat Pay call latency", ["operation"], registry=REGISTRY
)
PROVIDER_CIRCUIT = Gauge(
    "orderpay_provider_circuit_open", "1 while the WeChat Pay breaker is open", registry=REGISTRY
)
JOB_LAG = Gauge("orderpay_job_lag_seconds", "Age of the oldest due item per job", ["job"], registry=REGISTRY)
JOB_RUNS = Counter("orderpay_job_runs", "Job runs by outcome", ["job", "outcome"], registry=REGISTRY)
WAITERS = Gauge("orderpay_waiters_parked", "GetOrder(wait_ms) calls parked right now", registry=REGISTRY)
IN_FLIGHT = Gauge("orderpay_rpc_in_flight", "Calls holding an admission slot", registry=REGISTRY)
OVERLOADED = Counter("orderpay_rpc_overloaded", "Calls refused by admission control", registry=REGISTRY)
