"""Bearer-token authentication and the role each RPC needs."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from server.domain.errors import PermissionDeniedError, UnauthenticatedError

ADMIN_ONLY = frozenset(
    {
        "/orderpay.v1.OrderService/UpdateOrderStatus",
        "/orderpay.v1.PayService/RefundOrder",
        "/orderpay.v1.PayService/ResolveAbnormalRefund",
    }
)
ADMIN_SERVICES = (  # every method of these needs the admin role
    "/orderpay.v1.ReconService/",
    "/orderpay.v1.AdminService/",
)
PUBLIC_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
# The event feed (issue 19) is for the business's own systems: the `feed` role, and admin. The BFF
# serves end users and does not read every order of every user; a feed token can do nothing else.
FEED_SERVICE = "/orderpay.v1.EventService/"
FEED_ROLES = frozenset({"feed", "admin"})


def is_public(method: str) -> bool:
    return method.startswith(PUBLIC_PREFIXES)


class TokenAuthenticator:
    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = [(token.encode(), role) for token, role in tokens.items()]

    def role_for(self, authorization: str | None) -> str:
        if not (authorization or "").strip():
            raise UnauthenticatedError("missing bearer token")
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":  # never echo what was sent: it may be the token itself
            raise UnauthenticatedError(
                "the authorization metadata must read `Bearer <token>`; this one has no Bearer scheme"
            )
        if not token.strip():
            raise UnauthenticatedError("empty bearer token: the authorization metadata reads `Bearer ` alone")
        presented = token.strip().encode()
        role = None
        for known, known_role in self._tokens:  # compare against every token: no timing hint
            if hmac.compare_digest(known, presented):
                role = known_role
        if role is None:
            raise UnauthenticatedError("unknown bearer token")
        return role

    def authorize(self, method: str, authorization: str | None) -> str:
        role = self.role_for(authorization)
        name = method.rsplit("/", 1)[-1]
        if method.startswith(FEED_SERVICE):
            if role not in FEED_ROLES:
                raise PermissionDeniedError(f"{name} needs the feed or admin role")
            return role
        if role == "feed":
            raise PermissionDeniedError(f"the feed role may call EventService only, not {name}")
        if (method in ADMIN_ONLY or method.startswith(ADMIN_SERVICES)) and role != "admin":
            raise PermissionDeniedError(f"{name} needs the admin role")
        return role
