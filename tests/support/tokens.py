"""gRPC call metadata for the two test callers (the tokens settings_for configures)."""

from __future__ import annotations

BFF = (("authorization", "Bearer test-bff-token"),)
ADMIN = (("authorization", "Bearer test-admin-token"),)
