"""The pg_auto_failover formation the failover drill runs on: the one `orderpay bench` uses for its
replicated B5 (clients/bench/formation.py), so the tests and the benchmark start it the same way."""

from clients.bench.formation import Formation, Node, available, running_formation

__all__ = ["Formation", "Node", "available", "running_formation"]
