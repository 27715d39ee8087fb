"""Console sign-in: an admin token buys a server-side session; the cookie holds only its random id.

The cookie is HttpOnly and SameSite=Strict (Secure over TLS); every form carries the session's CSRF
token, and a POST without it is refused. The sign-in form itself is CSRF-protected by a double-submit
cookie. Sessions live in this process's memory: a restart signs everyone out (on purpose: no store).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from server.domain.clock import Clock
from server.domain.errors import DomainError
from server.rpc.auth import TokenAuthenticator

SESSION_COOKIE = "orderpay_console"
LOGIN_COOKIE = "orderpay_console_login"
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class Session:
    session_id: str
    csrf: str
    actor: str  # "admin@console:<token fingerprint>": which admin token, never the token
    expires_at: datetime


class SignInRefused(Exception):  # noqa: N818 - a signal to the view: show the form again with this text
    pass


class Sessions:
    def __init__(self, authenticator: TokenAuthenticator, clock: Clock, ttl: timedelta) -> None:
        self._auth = authenticator
        self._clock = clock
        self._ttl = ttl
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def sign_in(self, token: str) -> Session:
        try:
            role = self._auth.role_for(f"Bearer {token.strip()}")
        except DomainError as exc:
            raise SignInRefused("unknown token") from exc
        if role != "admin":
            raise SignInRefused("the console needs an admin token")
        fingerprint = hashlib.sha256(token.strip().encode()).hexdigest()[:8]
        session = Session(
            session_id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            actor=f"admin@console:{fingerprint}",
            expires_at=self._clock() + self._ttl,
        )
        with self._lock:
            self._expire()
            if len(self._sessions) >= MAX_SESSIONS:
                raise SignInRefused("too many open sessions; sign out elsewhere first")
            self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires_at <= self._clock():
                del self._sessions[session_id]
                return None
            return session

    def sign_out(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]


def same_token(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected.encode(), (presented or "").encode())
