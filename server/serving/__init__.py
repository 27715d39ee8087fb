"""The asyncio serving core: one event loop per process runs gRPC, the notify sidecar and the
long-poll waiters; a small owned thread pool runs the calls that talk to WeChat Pay."""
