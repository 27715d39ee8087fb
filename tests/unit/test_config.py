"""Settings: defaults, TOML, environment precedence, and loud failures on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import DEV_TOKENS, Settings, load_settings


def test_defaults_give_a_working_local_stack() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.database_url == "sqlite:///.orderpay/orderpay.db"
    assert settings.api_tokens == DEV_TOKENS
    assert settings.tokens == {"dev-bff-token": "bff", "dev-admin-token": "admin"}


def test_environment_beats_the_file_and_values_are_typed(tmp_path: Path) -> None:
    toml = tmp_path / "orderpay.toml"
    toml.write_text('grpc_listen = "0.0.0.0:6000"\norder_ttl_s = 600\njobs_enabled = false\n')
    settings = load_settings(
        {
            "ORDERPAY_CONFIG_FILE": str(toml),
            "ORDERPAY_ORDER_TTL_S": "900",
            "ORDERPAY_RECONCILE_SCHEDULE_S": "1,2.5",
            "ORDERPAY_AUTO_REFUND_ON_FULFILMENT_FAILURE": "no",
        }
    )
    assert (settings.grpc_listen, settings.order_ttl_s, settings.jobs_enabled) == ("0.0.0.0:6000", 900, False)
    assert settings.reconcile_schedule_s == (1.0, 2.5)
    assert settings.auto_refund_on_fulfilment_failure is False


@pytest.mark.parametrize("tokens", ["bff", "root:x", "admin:", ":abc"])
def test_bad_token_lists_fail_at_start(tokens: str) -> None:
    with pytest.raises(ValueError, match="ORDERPAY_API_TOKENS"):
        load_settings({"ORDERPAY_API_TOKENS": tokens})


def test_unknown_file_settings_and_bad_numbers_fail(tmp_path: Path) -> None:
    toml = tmp_path / "orderpay.toml"
    toml.write_text('grpc_lisen = "typo"\n')
    with pytest.raises(ValueError, match="unknown settings"):
        load_settings({"ORDERPAY_CONFIG_FILE": str(toml)})
    with pytest.raises(ValueError, match="ORDERPAY_MAX_INFLIGHT: expected int, got 'many'"):
        load_settings({"ORDERPAY_MAX_INFLIGHT": "many"})
