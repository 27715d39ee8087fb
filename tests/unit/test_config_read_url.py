"""ORDERPAY_DATABASE_READ_URL is checked at start like the main URL: one line naming the variable."""

from __future__ import annotations

import pytest

from server.config import ConfigError, load_settings

PRIMARY = "postgresql://app@10.0.0.1:5432/orderpay"


@pytest.mark.parametrize(
    ("read_url", "why"),
    [
        ("postgresql://app@standby:99999/orderpay", r"has a bad port '99999'"),
        ("postgresql://app@standby:5432/", r"names no database"),
        ("postgresql://app@standby/orderpay?target_session_attrs=nearest", r"target_session_attrs='nearest'"),
        ("postgresql://app@standby/orderpay?no_such_option=1", r"libpq refuses"),
        ("mysql://app@standby/orderpay", r"unsupported scheme 'mysql'"),
        ("sqlite:///:memory:", r"a postgresql:// standby of a postgresql:// primary"),
    ],
)
def test_a_malformed_read_url_is_refused_in_one_line(read_url: str, why: str) -> None:
    with pytest.raises(ConfigError, match=rf"^ORDERPAY_DATABASE_READ_URL: .*{why}") as refused:
        load_settings({"ORDERPAY_DATABASE_URL": PRIMARY, "ORDERPAY_DATABASE_READ_URL": read_url})
    assert "\n" not in str(refused.value)


def test_a_read_url_needs_a_postgresql_primary() -> None:
    with pytest.raises(ConfigError, match=r"^ORDERPAY_DATABASE_READ_URL: a postgresql:// standby"):
        load_settings({"ORDERPAY_DATABASE_URL": "sqlite:///:memory:", "ORDERPAY_DATABASE_READ_URL": PRIMARY})


def test_a_read_url_may_list_hosts_without_read_write() -> None:
    """Reads may go to any node: libpq's prefer-standby picks a standby while one answers."""
    nodes = "postgresql://app@h1:5432,h2:5432/orderpay?target_session_attrs=prefer-standby"
    settings = load_settings({"ORDERPAY_DATABASE_URL": PRIMARY, "ORDERPAY_DATABASE_READ_URL": nodes})
    assert settings.database_read_url == nodes
    assert load_settings({"ORDERPAY_DATABASE_URL": PRIMARY}).database_read_url == ""
