"""Serving the console from a thread of its own (started by `orderpay serve` and `dev`), TLS optional."""

from __future__ import annotations

import functools
from datetime import timedelta

from server.app import App
from server.console.app import make_console_app
from server.console.deps import ConsoleDeps
from server.console.listener import ConsoleListener, check_console_listener, ssl_context
from server.console.sessions import Sessions
from server.console.throttle import SignInThrottle
from server.rpc.auth import TokenAuthenticator
from server.serving.http import AppThread, listener_limits


def console_deps(app: App) -> ConsoleDeps:
    from server.adapters.admin_stats import overview  # noqa: PLC0415

    sessions = Sessions(
        TokenAuthenticator(app.settings.tokens),
        app.clock,
        timedelta(seconds=app.settings.console_session_ttl_s),
    )
    return ConsoleDeps(
        queries=app.admin,
        operations=app.operations,
        sessions=sessions,
        clock=app.clock,
        overview=lambda now: overview(app.admin.reads, now),
        replica_lag=app.admin.reads.lag if app.admin.reads.has_standby else None,
        secure_cookies=bool(app.settings.console_tls_cert),
        throttle=SignInThrottle(app.clock),
        feed_lags=app.feed.lags,
        webhooks=app.webhooks,
        accounts=app.payments.reconciliation.accounts if app.payments is not None else (),
    )


def start_console(app: App) -> tuple[AppThread, ConsoleListener] | None:
    """Start the console when ORDERPAY_CONSOLE_LISTEN is set; refuses an unsafe listener (ConfigError).

    On a thread of its own, not the serving loop: its actions call the use cases directly, and some of
    those (a refund) call WeChat Pay."""
    listener = check_console_listener(app.settings)
    if listener is None:
        return None
    console = console_deps(app)
    app_factory = functools.partial(make_console_app, console)
    server = AppThread(
        "console",
        [(app_factory, listener.host, listener.port, ssl_context(app.settings))],
        grace_s=5.0,
        limits=listener_limits(app.settings),
    )
    (port,) = server.start()
    return server, ConsoleListener(listener.host, port, listener.tls)
