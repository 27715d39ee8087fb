"""The console as an aiohttp Application: middleware, templates, static files, every page and action."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from server.console import actions, views, webhook_actions
from server.console.deps import (
    DEPS,
    HERE,
    ConsoleDeps,
    fmt_time,
    fmt_yuan,
    log_line,
    security_headers,
    signed_in,
)


def make_console_app(console: ConsoleDeps) -> web.Application:
    app = web.Application(middlewares=[log_line, security_headers, signed_in], client_max_size=64 * 1024)
    app[DEPS] = console
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(time=fmt_time, yuan=fmt_yuan)
    app[aiohttp_jinja2.static_root_key] = "/static"
    app.router.add_static("/static/", HERE / "static")
    views.add_routes(app)
    actions.add_routes(app)
    webhook_actions.add_routes(app)
    return app
