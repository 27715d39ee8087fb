"""The composition of one running sandbox, stored on the aiohttp app behind an AppKey."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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
    # One book per account (sandbox/engine/world.py): a direct merchant, a provider, or a provider's
    # sub-merchant (then `sub_mchid` is set and `keys` are the provider's).
    kind: str = "direct"
    sub_mchid: str | None = None
    appids: frozenset[str] = field(default_factory=frozenset)
    name: str = "default"

    @property
    def mchid(self) -> str:
        return self.credentials.mchid

    @classmethod
    def build(
        cls,
        config: SandboxConfig,
        clock: Clock | SandboxClock = utc_now,
        *,
        keys: KeyLifecycle | None = None,
        kind: str = "direct",
        sub_mchid: str | None = None,
        appids: frozenset[str] | None = None,
        name: str = "default",
    ) -> Sandbox:
        clock = as_sandbox_clock(clock)
        settings = Settings(config)
        dice = Dice(config.seed)
        backend = Backend(clock)
        keys = keys or KeyLifecycle(config.credentials, lambda: settings.config, dice, clock)
        notifier = Notifier(
            config.credentials,
            lambda: settings.config,
            settings.faults_for,
            dice,
            clock,
            keys.notification_signer,
        )
        simulator = Simulator(backend, notifier, settings)
        appids = appids if appids is not None else frozenset({config.credentials.appid})
        return cls(
            config.credentials, settings, backend, notifier, simulator, dice, clock, keys,
            kind, sub_mchid, appids, name,
        )  # fmt: skip

    async def reset(self) -> None:
        await self.simulator.reset()
        if self.sub_mchid is None:  # a sub-merchant's keys are its provider's, reset with it
            self.keys.reset()
        self.dice.reseed()


SANDBOX = web.AppKey("sandbox", Sandbox)
