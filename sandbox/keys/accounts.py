"""Several accounts in one credentials directory: a directory per account (research anchors §1).

    DIR/<name>/merchant.json (+ the bundle's PEM files)   a direct merchant or a service provider (服务商)
    DIR/<name>/merchant.json                              a sub-merchant (特约商户) reached through a provider

A direct or provider `merchant.json` is the single bundle's (`bundle.py`) plus `kind`, `key_mode` and
`apps` (channel → appid). A sub-merchant's holds `kind: "sub_merchant"`, `provider` (the provider's
directory name), `sub_mchid` and `apps` (channel → its own sub_appid; a channel it has no app for
pays under the provider's app). A DIR that itself holds `merchant.json` is the one-account layout of
before: it reads as one direct account named `default` whose appid serves every channel.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.keys.bundle import MERCHANT_JSON, BundleExistsError, Credentials, init_bundle, load_credentials

CHANNELS = ("jsapi", "miniprogram", "app", "h5", "native")  # orderpay's PayChannel names
KINDS = ("direct", "provider", "sub_merchant")
DEFAULT_ACCOUNT = "default"


class AccountsError(ValueError):
    """A credentials directory that cannot be read as accounts; the message names the account."""


@dataclass(frozen=True)
class AccountSpec:
    name: str
    kind: str  # direct | provider | sub_merchant
    mchid: str  # the account's own number: mchid, or sub_mchid for a sub-merchant
    apps: dict[str, str] = field(default_factory=dict)  # channel -> appid (sub_appid for a sub-merchant)
    credentials: Credentials | None = None  # direct and provider accounts
    key_mode: str | None = None
    provider: str | None = None  # sub-merchant: the provider account's name

    @property
    def appids(self) -> frozenset[str]:
        own = {self.credentials.appid} if self.credentials is not None else set()
        return frozenset(own | set(self.apps.values()))


def is_multi(directory: Path) -> bool:
    return not (directory / MERCHANT_JSON).exists()


def load_accounts(directory: Path) -> list[AccountSpec]:
    """Every account under `directory`, providers before their sub-merchants; raises AccountsError."""
    if not is_multi(directory):
        creds = load_credentials(directory)
        apps = dict.fromkeys(CHANNELS, creds.appid)
        return [AccountSpec(DEFAULT_ACCOUNT, "direct", creds.mchid, apps, creds)]
    accounts = [_load_one(path) for path in sorted(directory.iterdir()) if (path / MERCHANT_JSON).is_file()]
    if not accounts:
        raise AccountsError(f"{directory}: no account directories (DIR/<name>/{MERCHANT_JSON})")
    names = {a.name: a for a in accounts}
    for account in accounts:
        if account.kind == "sub_merchant":
            provider = names.get(account.provider or "")
            if provider is None or provider.kind != "provider":
                raise AccountsError(
                    f"account {account.name}: provider {account.provider!r} is not a provider account"
                )
    return sorted(accounts, key=lambda a: a.kind == "sub_merchant")


def _load_one(path: Path) -> AccountSpec:
    try:
        info = json.loads((path / MERCHANT_JSON).read_text(encoding="utf-8"))
        kind, apps = _kind_and_apps(info)
        if kind == "sub_merchant":
            return AccountSpec(path.name, kind, str(info["sub_mchid"]), apps, provider=str(info["provider"]))
        creds = load_credentials(path)
        return AccountSpec(path.name, kind, creds.mchid, apps, creds, info.get("key_mode"))
    except AccountsError as exc:
        raise AccountsError(f"account {path.name}: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AccountsError(f"account {path.name}: {type(exc).__name__}: {exc}") from None


def _kind_and_apps(info: dict[str, object]) -> tuple[str, dict[str, str]]:
    kind = info.get("kind", "direct")
    if kind not in KINDS:
        raise AccountsError(f"kind must be one of {', '.join(KINDS)}")
    apps = info.get("apps", {})
    if not isinstance(apps, dict) or not set(apps) <= set(CHANNELS):
        raise AccountsError(f"apps must map channels ({', '.join(CHANNELS)}) to appids")
    return str(kind), {str(k): str(v) for k, v in apps.items()}


def _appid() -> str:
    return "wx" + secrets.token_hex(8)


def _sub_mchid() -> str:
    return "16" + "".join(secrets.choice(string.digits) for _ in range(8))


# The throwaway set `orderpay keys init --accounts` writes (and `orderpay dev` runs with).
DEMO_SET: tuple[tuple[str, str, str | None], ...] = (
    ("direct-pk", "direct", "public_key"),
    ("direct-cert", "direct", "certificate"),
    ("sp", "provider", "public_key"),
    ("sp-sub-a", "sub_merchant", None),
    ("sp-sub-b", "sub_merchant", None),
)


def init_accounts(directory: Path, *, force: bool = False) -> list[dict[str, object]]:
    """Write the demo set: two direct merchants (public-key and certificate mode) and a provider
    with two sub-merchants (`sp-sub-a` has its own mini program, `sp-sub-b` none)."""
    if not force and directory.exists() and any(directory.iterdir()):
        raise BundleExistsError(f"{directory} is not empty (use --force to replace the accounts in it)")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    written: list[dict[str, object]] = []
    for name, kind, key_mode in DEMO_SET:
        target = directory / name
        if kind == "sub_merchant":
            info: dict[str, object] = {"kind": kind, "provider": "sp", "sub_mchid": _sub_mchid(), "apps": {}}
            if name == "sp-sub-a":
                info["apps"] = {"miniprogram": _appid()}
            target.mkdir(mode=0o700, exist_ok=True)
            (target / MERCHANT_JSON).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        else:
            info = dict(init_bundle(target, force=True))
            official, mini, mobile = info["appid"], _appid(), _appid()
            apps = {"jsapi": official, "miniprogram": mini, "app": mobile, "h5": official, "native": official}
            info.update(kind=kind, key_mode=key_mode, apps=apps)
            (target / MERCHANT_JSON).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
            (target / MERCHANT_JSON).chmod(0o600)
        written.append({"name": name, **info})
    # The directory's default account (server/wxpay/accounts.py reads it): orders without a rule go here.
    (directory / "accounts.json").write_text(json.dumps({"default": "direct-pk"}) + "\n", encoding="utf-8")
    return written
