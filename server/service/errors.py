"""Service-level failures that are not the caller's fault."""

from __future__ import annotations

from server.domain.errors import DomainError


class TransientError(DomainError):
    """Cannot decide now (state not ready, database busy): retry later; notify answers 5xx."""

    reason = "TRANSIENT"
