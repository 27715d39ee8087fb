"""`orderpay keys check ACCOUNT`: WeChat's echo self-test (`POST /v3/security/echo`) for one account,
through the gateway orderpay is configured with, in the account's key mode.

Each line says which part of the key set it proves: our API key signs (the gateway accepted the
request), the WeChat Pay key we hold verifies (the answer's signature), we encrypt to that key (the
gateway opened `encrypted_echo_message`), and we decrypt what is sealed to our key.
"""

from __future__ import annotations

from pathlib import Path

from server.config import load_settings
from server.domain.errors import DomainError
from server.wxpay.accounts import load_accounts
from server.wxpay.client import from_settings
from server.wxpay.errors import NotificationRejected


def check_keys(directory: Path | None, account_name: str) -> int:
    settings = load_settings()
    accounts = load_accounts(directory or settings.credentials_dir, settings.default_account)
    account = accounts.get(account_name)
    if account is None:
        print(f"orderpay keys check: no account {account_name!r} (have: {', '.join(accounts.names)})")
        return 2
    signer = f" (signs as its provider {account.provider}, {account.mchid})" if account.partner else ""
    print(f"account      {account.name}: {account.kind} {account.sub_mchid or account.mchid}{signer}")
    print(f"gateway      {settings.wxpay_base_url}")
    with from_settings(settings, account.credentials, sign_mode=account.sign_mode) as client:
        try:
            if account.sign_mode == "cert":
                client.key_store.refresh()  # certificate mode: the key we encrypt to comes from the list
            serial, echoed, opened = client.security_echo(f"orderpay keys check {account.name}")
        except (DomainError, NotificationRejected) as exc:
            code = getattr(exc, "metadata", {}).get("provider_code", type(exc).__name__)
            print(f"FAILED       {code}: {exc}")
            return 1
    kind = "WeChat Pay public key" if serial.startswith("PUB_KEY_ID_") else "platform certificate"
    ours = account.credentials.merchant_serial_no
    print(f"signing      ok: the gateway accepted our request signature (API certificate {ours})")
    print(f"verifying    ok: the answer verified with the {kind} {serial}")
    print(f"encrypting   ok: the gateway decrypted what we sealed to {serial} ({echoed!r})")
    if opened != echoed:
        print(f"decrypting   FAILED: what the gateway sealed to our key reads {opened!r}")
        return 1
    print("decrypting   ok: we decrypted what the gateway sealed to our API key")
    return 0
