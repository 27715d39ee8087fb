"""Who is asking: threaded through use cases for the audit trail."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    actor: str  # "bff", "admin", "system:notify", "job:expiry", ...
    request_id: str = ""


def replace_actor(caller: Caller, reason: str) -> Caller:
    """The same caller, with the operator's reason folded into the audit cause."""
    return Caller(
        actor=f"{caller.actor}: {reason}"[:64] if reason else caller.actor, request_id=caller.request_id
    )
