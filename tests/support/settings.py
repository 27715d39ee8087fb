"""Settings for a test: loopback listeners on port 0, the test tokens, quiet JSON logs."""

from __future__ import annotations

from server.config import Settings


def settings_for(database_url: str, **overrides: object) -> Settings:
    return Settings(
        database_url=database_url,
        grpc_listen="127.0.0.1:0",
        notify_listen="127.0.0.1:0",
        metrics_listen="127.0.0.1:0",
        api_tokens="bff:test-bff-token,admin:test-admin-token",
        db_pool_size=80,
        log_format="json",
        log_level="warning",
    ).with_overrides(**overrides)
