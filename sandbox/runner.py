"""The `orderpay sandbox` process: serve until SIGTERM/SIGINT, then shut down gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from sandbox.app import make_app
from sandbox.config import NotifySignMode, SandboxConfig
from sandbox.keys.accounts import is_multi, load_accounts


async def _serve(config: SandboxConfig, host: str, port: int, port_file: Path | None) -> None:
    # In-flight calls get 5 s to finish; hung (fault-injected) ones are cancelled after that.
    runner = web.AppRunner(make_app(config), handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    if port_file is not None:
        tmp = port_file.with_suffix(port_file.suffix + ".tmp")
        tmp.write_text(f"{bound}\n", encoding="utf-8")
        tmp.replace(port_file)  # readers never see a half-written file
    print(f"sandbox listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    print("sandbox stopped", flush=True)


def run_cli(
    *,
    host: str,
    port: int,
    credentials_dir: Path,
    time_scale: float,
    auto_pay_delay_s: float | None,
    seed: int | None,
    notify_sign_mode: NotifySignMode,
    port_file: Path | None,
    key_mode: str | None = None,
    migration_ramp_s: float = 7 * 24 * 3600.0,
    verbose: bool = False,
) -> int:
    # --verbose: access lines and notification attempts on stderr (off by default, so a parent that
    # pipes stderr without reading it never blocks us). stdout carries only the "listening" line.
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(message)s")
    accounts = load_accounts(credentials_dir)  # one (the old layout) or several (DIR/<name>/)
    primary = next(a.credentials for a in accounts if a.credentials is not None)
    config = SandboxConfig(
        credentials=primary,
        accounts=tuple(accounts) if is_multi(credentials_dir) else (),
        time_scale=time_scale,
        auto_pay_delay_s=auto_pay_delay_s,
        seed=seed,
        notify_sign_mode=notify_sign_mode,
        key_mode=key_mode,
        migration_ramp_s=migration_ramp_s,
    )
    asyncio.run(_serve(config, host, port, port_file))
    return 0
