"""The composition of one running sandbox, stored on the aiohttp app behind an AppKey."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from sandbox.config import SandboxConfig
from sandbox.engine.backend import Backend
from sandbox.engine.clock import SandboxClock, as_sandbox_clock
from sandbox.engine.faults import Dice, Settings
from sandbox.engine.notifier import Notifier
from sandbox.engine.simulator import Simulator
from sandbox.keys.bundle import Credentials
from sandbox.keys.modes import KeyLifecycle

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Sandbox:
    credentials: Credentials
    settings: Settings
    backend: Backend
    notifier: Notifier
    simulator: Simulator
    dice: Dice
    clock: SandboxClock  # the one source of now (sandbox/clock.py); the key life cycle reads it too
    keys: KeyLifecycle

    @classmethod
    def build(cls, config: SandboxConfig, clock: Clock | SandboxClock = utc_now) -> Sandbox:
        clock = as_sandbox_clock(clock)
        settings = Settings(config)
        dice = Dice(config.seed)
        backend = Backend(clock)
        keys = KeyLifecycle(config.credentials, lambda: settings.config, dice, clock)
        notifier = Notifier(
            config.credentials,
            lambda: settings.config,
            settings.faults_for,
            dice,
            clock,
            keys.notification_signer,
        )
        simulator = Simulator(backend, notifier, settings)
        return cls(config.credentials, settings, backend, notifier, simulator, dice, clock, keys)

    async def reset(self) -> None:
        await self.simulator.reset()
        self.keys.reset()
        self.dice.reseed()


SANDBOX = web.AppKey("sandbox", Sandbox)
