"""VIP membership maths."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Membership:
    user_id: str
    expires_at: datetime | None
    version: int = 0

    def is_active(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at > now


def extended(current: datetime | None, now: datetime, days: int) -> datetime:
    """max(now, current) + days: buying while active stacks, buying after expiry starts today."""
    base = now if current is None or current < now else current
    return base + timedelta(days=days)
