"""`orderpay bench` (`make bench`): B1–B6 (README § Benchmarks) against real local processes, each next
to bare echo servers driven by the same harness in the same run."""
