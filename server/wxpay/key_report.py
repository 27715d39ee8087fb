"""`orderpay keys show`: the WeChat Pay keys orderpay verifies with, their serials and validity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.config import load_settings
from server.domain.errors import DomainError
from server.wxpay.accounts import load_accounts
from server.wxpay.certificates import EXPIRY_WARNING, KnownKey
from server.wxpay.client import from_settings


def _row(key: KnownKey, now: datetime) -> dict[str, object]:
    days_left = None if key.not_after is None else round((key.not_after - now) / timedelta(days=1), 1)
    return {
        "kind": key.kind,
        "serial": key.serial,
        "source": key.source,
        "not_before": key.not_before.isoformat() if key.not_before else None,
        "not_after": key.not_after.isoformat() if key.not_after else None,
        "days_left": days_left,
        "expiring": key.expires_within(now, EXPIRY_WARNING),
    }


def show_keys(directory: Path | None, *, offline: bool, as_json: bool, account: str | None = None) -> int:
    """`account`: which account's keys (a directory of accounts); default the default account."""
    settings = load_settings()
    accounts = load_accounts(directory or settings.credentials_dir, settings.default_account)
    chosen = accounts.get(account) if account else accounts.default
    if chosen is None:
        print(f"orderpay keys show: no account {account!r} (have: {', '.join(accounts.names)})")
        return 2
    credentials = chosen.credentials
    note = "not downloaded (--offline)" if offline else "downloaded"
    with from_settings(settings, credentials) as client:
        if not offline:
            try:
                client.key_store.refresh()
            except DomainError as exc:  # 404 RESOURCE_NOT_EXISTS: a public-key-only merchant
                code = exc.metadata.get("provider_code", exc.reason)
                note = f"not available from {settings.wxpay_base_url}: {code} {exc.message}"
        now = datetime.now(UTC)
        rows = [_row(key, now) for key in client.key_store.known()]
    if as_json:
        shown = {"account": chosen.name, "mchid": credentials.mchid, "keys": rows, "certificates": note}
        print(json.dumps(shown, ensure_ascii=False, indent=2))
        return 0
    whose = f"account {chosen.name}, mchid {credentials.mchid}"
    print(f"WeChat Pay keys for {whose} (platform certificates: {note})")
    print(f"{'KIND':<12} {'SERIAL':<42} {'SOURCE':<11} {'VALID FROM':<26} {'VALID UNTIL':<26} DAYS LEFT")
    for row in rows:
        flag = "  <- expires within 10 days" if row["expiring"] else ""
        print(
            f"{row['kind']!s:<12} {row['serial']!s:<42} {row['source']!s:<11} "
            f"{row['not_before'] or '-'!s:<26} {row['not_after'] or '-'!s:<26} "
            f"{'-' if row['days_left'] is None else row['days_left']}{flag}"
        )
    return 0
