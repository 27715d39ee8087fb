"""Settings for a test: loopback listeners on port 0, the test tokens, quiet JSON logs."""

from __future__ import annotations

from server.config import Settings
from tests.support.isolation import NO_CREDENTIALS, NOWHERE_NOTIFY_URL


def settings_for(database_url: str, **overrides: object) -> Settings:
    return Settings(
        database_url=database_url,
        grpc_listen="127.0.0.1:0",
        notify_listen="127.0.0.1:0",
        metrics_listen="127.0.0.1:0",
        console_listen="",
        # Never the repository's .orderpay/keys (`make run` writes it); tests with payments bring their own.
        credentials_dir=NO_CREDENTIALS,
        # Never the default sidecar port (a running `make run` listens there): nothing answers on port 9.
        notify_url=NOWHERE_NOTIFY_URL,
        api_tokens="bff:test-bff-token,admin:test-admin-token",
        db_pool_size=80,
        log_format="json",
        log_level="warning",
    ).with_overrides(**overrides)
