"""Fault settings per order over the global ones, and the seeded dice that decide rate-based faults."""

from __future__ import annotations

import random
import threading
from typing import Any

from sandbox.config import Faults, SandboxConfig, update_config, update_faults


class Dice:
    """One seeded RNG for every fault decision: the same seed and call order give the same faults."""

    def __init__(self, seed: int | None) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def reseed(self) -> None:
        with self._lock:
            self._rng = random.Random(self._seed)

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def jitter(self, spread: float) -> float:
        if spread <= 0:
            return 0.0
        with self._lock:
            return self._rng.uniform(-spread, spread)


class Settings:
    """The live configuration: a frozen config swapped whole, plus per-order fault overrides."""

    def __init__(self, initial: SandboxConfig) -> None:
        self._initial = initial
        self._current = initial
        self._order_faults: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @property
    def config(self) -> SandboxConfig:
        return self._current

    def update(self, changes: dict[str, Any]) -> SandboxConfig:
        with self._lock:
            self._current = update_config(self._current, changes)
            return self._current

    def set_order_faults(self, out_trade_no: str, changes: dict[str, Any]) -> Faults:
        with self._lock:
            merged = {**self._order_faults.get(out_trade_no, {}), **changes}
            faults = update_faults(self._current.faults, merged)  # validates before storing
            self._order_faults[out_trade_no] = merged
            return faults

    def faults_for(self, out_trade_no: str | None) -> Faults:
        overrides = self._order_faults.get(out_trade_no or "", {})
        return update_faults(self._current.faults, overrides) if overrides else self._current.faults

    def order_faults(self) -> dict[str, dict[str, Any]]:
        return {no: dict(changes) for no, changes in self._order_faults.items()}

    def reset(self) -> None:
        with self._lock:
            self._current = self._initial
            self._order_faults.clear()
