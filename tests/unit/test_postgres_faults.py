"""Which PostgreSQL errors mean "this server is gone or read-only: retry elsewhere" (UNAVAILABLE, and the
pool drops its connections), and which are the query's own (left alone); libpq parameters orderpay adds."""

from __future__ import annotations

import peewee as pw
import psycopg2
import psycopg2.errors
import pytest

from server.adapters.postgres import connect_params, server_gone


def wrapped(error: Exception) -> pw.DatabaseError:
    """What peewee raises: its own class, the driver's exception kept as `.orig`."""
    return pw.OperationalError(error)


@pytest.mark.parametrize(
    "error",
    [
        psycopg2.OperationalError("server closed the connection unexpectedly"),  # no SQLSTATE: socket broke
        psycopg2.InterfaceError("connection already closed"),
        psycopg2.errors.AdminShutdown("terminating connection due to administrator command"),  # 57P01
        psycopg2.errors.CannotConnectNow("the database system is starting up"),  # 57P03
        psycopg2.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),  # 25006
    ],
)
def test_errors_that_mean_the_server_is_gone(error: Exception) -> None:
    assert server_gone(wrapped(error))


@pytest.mark.parametrize(
    "error",
    [
        psycopg2.errors.UniqueViolation("duplicate key"),
        psycopg2.errors.SerializationFailure("could not serialize access"),
        psycopg2.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg2.errors.UndefinedTable("relation does not exist"),
    ],
)
def test_errors_of_the_query_itself_are_left_alone(error: Exception) -> None:
    assert not server_gone(wrapped(error))


def test_multi_host_urls_keep_every_host_and_get_failover_defaults() -> None:
    params = connect_params(
        "postgresql://app@h1:5432,h2:5433/orderpay?target_session_attrs=read-write&connect_timeout=2",
        synchronous_commit="local",
    )
    assert params["host"] == "h1,h2"
    assert params["port"] == "5432,5433"
    assert params["target_session_attrs"] == "read-write"
    assert params["connect_timeout"] == "2"  # the URL wins over orderpay's default
    assert params["keepalives"] == "1"
    assert params["options"] == "-c synchronous_commit=local"
