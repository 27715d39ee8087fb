"""`orderpay bench` (`make bench`): SPEC §9's B1–B6 against real local processes, each next to bare
echo servers driven by the same harness in the same run."""
