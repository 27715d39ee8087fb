"""Defaults of the load tester, pointing at `orderpay dev`'s stack."""

from __future__ import annotations

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_SANDBOX_URL = "http://127.0.0.1:8090"
DEFAULT_NOTIFY_URL = "http://127.0.0.1:8080/wxpay/notify"
DEFAULT_DATABASE_URL = "sqlite:///.orderpay/orderpay.db"
DEV_BFF_TOKEN = "dev-bff-token"  # noqa: S105 - the public dev token of server/config.py
DEFAULT_DUPLICATES = {"duplicate-storm": 20, "notify-storm": 3}
