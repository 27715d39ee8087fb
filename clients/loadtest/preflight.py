"""Before any load: is anything serving at the target? One health call per target, a second each.

Without it, a run against a stack that is not up sends every call into a refused connection and
reports, a minute later, what one call would have said at once.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HEALTH_TIMEOUT_S = 2.0


class NothingAnswersError(ValueError):
    """No target answered the gRPC health check."""


def require_serving(targets: tuple[str, ...]) -> None:
    """Raise when none of `targets` answers SERVING (a run may mix a live and a dead one on purpose)."""
    problems = [f"{target} ({problem})" for target in targets if (problem := _problem(target))]
    if len(problems) == len(targets):
        shown = ", ".join(problems)
        raise NothingAnswersError(f"nothing answers at {shown}: is `make run` up? (or point --target at it)")


def _problem(target: str) -> str | None:
    try:
        with grpc.insecure_channel(target) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=HEALTH_TIMEOUT_S
            )
    except grpc.RpcError as exc:
        code = getattr(exc, "code", lambda: None)()
        return str(code.name) if isinstance(code, grpc.StatusCode) else "no answer"
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))
    return None
