"""Settings: defaults, TOML, environment precedence, and loud failures on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import DEV_TOKENS, ConfigError, Settings, describe_database, load_settings


def test_defaults_give_a_working_local_stack() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.database_url == "sqlite:///.orderpay/orderpay.db"
    assert settings.api_tokens == DEV_TOKENS
    assert settings.tokens == {"dev-bff-token": "bff", "dev-admin-token": "admin", "dev-feed-token": "feed"}


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


def test_log_level_and_format_are_checked_at_start() -> None:
    with pytest.raises(
        ValueError, match=r"^ORDERPAY_LOG_LEVEL: want one of debug, info, warning, error, critical"
    ):
        load_settings({"ORDERPAY_LOG_LEVEL": "verbose"})
    with pytest.raises(
        ValueError, match=r"^ORDERPAY_LOG_FORMAT: want one of auto, json, console; got 'xml'$"
    ):
        load_settings({"ORDERPAY_LOG_FORMAT": "xml"})
    assert load_settings({"ORDERPAY_LOG_LEVEL": "WARNING"}).log_level == "WARNING"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://orderpay.db", r"'sqlite://orderpay.db' is not sqlite:///PATH \(three slashes"),
        ("sqlite:////nonexistent-orderpay-dir/x.db", r"directory /nonexistent-orderpay-dir does not exist"),
        ("mysql://root@127.0.0.1/orderpay", r"unsupported scheme 'mysql'"),
        ("postgresql://u:secret@127.0.0.1:54x/db", r"postgresql://u:\*\*\*@127.0.0.1:54x/db has a bad port"),
        ("postgresql://u@127.0.0.1:5432/", r"names no database"),
        # issue 20: multi-host URLs (a failover formation)
        ("postgresql://u@h1:5432,h2:5433/db", r"lists 2 hosts; add \?target_session_attrs=read-write"),
        ("postgresql://u@h1:5432,h2:5433/db?target_session_attrs=any", r"lists 2 hosts"),
        ("postgresql://u@h1:5432,h2:99999/db?target_session_attrs=read-write", r"bad port '99999'"),
        ("postgresql://u@h1:5432/db?target_session_attrs=writable", r"target_session_attrs='writable'"),
        ("postgresql://u:secret@h1:5432/db?conect_timeout=2", r"libpq refuses .*conect_timeout"),
    ],
)
def test_bad_database_urls_are_one_line_naming_the_variable(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^ORDERPAY_DATABASE_URL: .*{message}") as caught:
        load_settings({"ORDERPAY_DATABASE_URL": url})
    assert "secret" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_good_database_urls_pass_and_nothing_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for url in (
        "sqlite:///.orderpay/orderpay.db",  # the dev state dir is made on demand
        f"sqlite:///{tmp_path}/x.db",
        "sqlite:///x.db",
        "sqlite:///:memory:",
        "postgresql://postgres@127.0.0.1:5432/orderpay",
        "postgres://u:p@db/orderpay",
        "postgresql://app@10.0.0.1:5432,10.0.0.2:5432/orderpay?target_session_attrs=read-write",
        # what `pg_autoctl show uri --formation default` prints, with a user added
        "postgres://app@h1:6001,h2:6002/orderpay?target_session_attrs=read-write&sslmode=prefer",
        "postgresql://app@[::1]:5432/orderpay?connect_timeout=3",
    ):
        assert load_settings({"ORDERPAY_DATABASE_URL": url}).database_url == url
    assert list(tmp_path.iterdir()) == []


def test_the_listen_url_is_checked_and_needs_postgresql() -> None:
    with pytest.raises(ConfigError, match=r"^ORDERPAY_DATABASE_SESSION_URL: .*names no database"):
        load_settings(
            {
                "ORDERPAY_DATABASE_URL": "postgresql://u@pgbouncer:6432/db",
                "ORDERPAY_DATABASE_SESSION_URL": "postgresql://u@h/",
            }
        )
    with pytest.raises(ConfigError, match=r"^ORDERPAY_DATABASE_SESSION_URL: only with a postgresql://"):
        load_settings(
            {
                "ORDERPAY_DATABASE_URL": "sqlite:///:memory:",
                "ORDERPAY_DATABASE_SESSION_URL": "postgresql://u@h/db",
            }
        )
    direct = "postgresql://u@h1:5432,h2:5432/db?target_session_attrs=read-write"
    settings = load_settings(
        {"ORDERPAY_DATABASE_URL": "postgresql://u@pgbouncer:6432/db", "ORDERPAY_DATABASE_SESSION_URL": direct}
    )
    assert settings.database_session_url == direct


def test_the_synchronous_commit_policy_is_checked() -> None:
    assert load_settings({"ORDERPAY_DB_SYNCHRONOUS_COMMIT": "local"}).db_synchronous_commit == "local"
    with pytest.raises(ConfigError, match=r"^ORDERPAY_DB_SYNCHRONOUS_COMMIT: want one of .*; got 'off'$"):
        load_settings({"ORDERPAY_DB_SYNCHRONOUS_COMMIT": "off"})


def test_the_banner_shows_the_database_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert describe_database("postgresql://app:hunter2@127.0.0.1:5432/orderpay") == (
        "postgresql://app:***@127.0.0.1:5432/orderpay"
    )
    assert describe_database("sqlite:///.orderpay/orderpay.db") == (
        f"sqlite:///.orderpay/orderpay.db   ({tmp_path.resolve()}/.orderpay/orderpay.db)"
    )
