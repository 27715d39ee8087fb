"""Who is asking: threaded through use cases for the audit trail."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    actor: str  # "bff", "admin", "system:notify", "job:expiry", ...
    request_id: str = ""


def replace_actor(caller: Caller, reason: str) -> Caller:
    """The same caller, with the operator's reason appended to its actor ("admin: duplicate charge"),
    cut at 64 characters (the audit row's actor column); the audit cause is left as the use case sets it."""
    return Caller(
        actor=f"{caller.actor}: {reason}"[:64] if reason else caller.actor, request_id=caller.request_id
    )
