"""Each way an `authorization` header can be wrong gets its own message, and none echoes what was sent."""

from __future__ import annotations

import pytest

from server.domain.errors import UnauthenticatedError
from server.rpc.auth import TokenAuthenticator

AUTH = TokenAuthenticator({"s3cret-bff": "bff"})


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing bearer token"),
        ("", "missing bearer token"),
        ("s3cret-bff", "must read `Bearer <token>`; this one has no Bearer scheme"),
        ("Token s3cret-bff", "must read `Bearer <token>`; this one has no Bearer scheme"),
        ("Bearer ", "empty bearer token"),
        ("Bearer nope", "unknown bearer token"),
    ],
)
def test_each_wrong_header_says_what_is_wrong(header: str | None, message: str) -> None:
    with pytest.raises(UnauthenticatedError) as refused:
        AUTH.role_for(header)

    assert message in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_the_scheme_is_case_insensitive() -> None:
    assert AUTH.role_for("bearer s3cret-bff") == "bff"
    assert AUTH.role_for("Bearer s3cret-bff") == "bff"
