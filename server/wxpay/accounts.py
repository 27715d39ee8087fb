"""Every merchant account a deployment takes payments for, loaded and checked once at start.

One credentials layout on disk, a directory per account (docs/going-live.md):

    DIR/<name>/merchant.json + merchant_private_key.pem + wechatpay_public_key.pem and/or
               platform_cert.pem                                  a direct merchant or a provider (服务商)
    DIR/<name>/merchant.json                                      a sub-merchant (特约商户)

A direct/provider `merchant.json` is the single bundle's (credentials.py) plus `kind` (`direct` or
`provider`), `key_mode` (which key WeChat signs answers with; `certificate` asks for certificate-signed
answers, yet a public key on disk still verifies, so the account's public-key migration runs) and
`apps` (channel → appid). A sub-merchant's is `{"kind": "sub_merchant", "provider": "<name>",
"sub_mchid": "…", "apps": {channel: sub_appid}}`: it pays under its provider's keys and apps, plus its
own sub_appid on the channels it lists.
A DIR holding `merchant.json` itself is the one-account layout from before: account `default`, its
appid on every channel. Any problem refuses the start in one line naming the account.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from server.domain.routing import AccountRouter, parse_routes
from server.wxpay.credentials import (
    MERCHANT_FILE,
    PLATFORM_CERT_FILE,
    MerchantCredentials,
    load_credentials,
)
from server.wxpay.errors import CredentialsError
from server.wxpay.transport import SignMode

CHANNELS = ("JSAPI", "MINIPROGRAM", "APP", "NATIVE", "H5")  # orderpay's PayChannel names
KINDS = ("direct", "provider", "sub_merchant")
DEFAULT_ACCOUNT = "default"
ACCOUNTS_FILE = "accounts.json"  # optional: {"default": "<account name>"}


class AccountsError(CredentialsError):
    """The accounts cannot be used as configured; the message is one line naming the account."""


@dataclass(frozen=True, repr=False)
class Account:
    name: str
    kind: str  # direct | provider | sub_merchant
    credentials: MerchantCredentials  # a sub-merchant's are its provider's
    apps: Mapping[str, str]  # channel -> appid (for a sub-merchant: the provider's sp_appid)
    key_mode: str = ""
    provider: str | None = None  # sub-merchant: the provider account's name
    sub_mchid: str | None = None
    sub_apps: Mapping[str, str] = field(default_factory=dict)  # sub-merchant: channel -> sub_appid

    @property
    def mchid(self) -> str:
        """The number that signs: the merchant's own, or the provider's (sp_mchid) for a sub-merchant."""
        return self.credentials.mchid

    @property
    def partner(self) -> bool:
        return self.sub_mchid is not None

    @property
    def sign_mode(self) -> SignMode:
        """Which WeChat Pay key this account asks answers to be signed with (Wechatpay-Serial)."""
        if self.key_mode == "certificate" or self.credentials.wechatpay_public_key is None:
            return "cert"
        return "pubkey"

    def app_for(self, channel: str) -> str | None:
        return self.apps.get(channel)

    def __repr__(self) -> str:
        sub = f", sub_mchid={self.sub_mchid!r}" if self.sub_mchid else ""
        return f"Account({self.name!r}, {self.kind}, mchid={self.mchid!r}{sub})"


@dataclass(frozen=True)
class Accounts:
    by_name: Mapping[str, Account]
    default_name: str

    @property
    def default(self) -> Account:
        return self.by_name[self.default_name]

    def get(self, name: str) -> Account | None:
        return self.by_name.get(name)

    def __iter__(self) -> Iterator[Account]:
        return iter(self.by_name.values())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.by_name)


def is_multi_account(directory: Path | str) -> bool:
    """A directory per account (not the one-account bundle): each account gets its own notify URL."""
    return not (Path(directory) / MERCHANT_FILE).exists()


def has_accounts(directory: Path | str) -> bool:
    """Either layout is present (the one-account bundle or at least one account directory)."""
    root = Path(directory)
    if (root / MERCHANT_FILE).exists():
        return True
    return root.is_dir() and any((path / MERCHANT_FILE).is_file() for path in root.iterdir())


def load_accounts(directory: Path | str, default: str = "") -> Accounts:
    root = Path(directory)
    if (root / MERCHANT_FILE).exists():
        credentials = load_credentials(root)
        only = Account(DEFAULT_ACCOUNT, "direct", credentials, dict.fromkeys(CHANNELS, credentials.appid))
        if default and default != DEFAULT_ACCOUNT:
            raise AccountsError(f"default account {default!r} does not exist (one-account layout: 'default')")
        return Accounts({DEFAULT_ACCOUNT: only}, DEFAULT_ACCOUNT)
    if not root.is_dir():
        raise AccountsError(f"credentials directory {root} does not exist")
    raw = {path.name: _read(path) for path in sorted(root.iterdir()) if (path / MERCHANT_FILE).is_file()}
    if not raw:
        raise AccountsError(f"{root}: no accounts (DIR/merchant.json or DIR/<name>/merchant.json)")
    accounts: dict[str, Account] = {}
    for name, info in raw.items():
        if info["kind"] != "sub_merchant":
            accounts[name] = _platform_account(root / name, info)
    for name, info in raw.items():
        if info["kind"] == "sub_merchant":
            accounts[name] = _sub_merchant(name, info, accounts)
    _check_apps(accounts)
    chosen = (
        default
        or _default_on_disk(root)
        or (DEFAULT_ACCOUNT if DEFAULT_ACCOUNT in accounts else next(iter(accounts)))
    )
    if chosen not in accounts:
        raise AccountsError(f"default account {chosen!r} is not one of {', '.join(sorted(accounts))}")
    return Accounts(accounts, chosen)


def _default_on_disk(root: Path) -> str:
    """`DIR/accounts.json` `{"default": "<name>"}`: the directory's own default account, so every
    process reading it (serve, the CLI) agrees without an environment variable."""
    path = root / ACCOUNTS_FILE
    if not path.exists():
        return ""
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("default", "")
    except (OSError, ValueError, AttributeError):
        raise AccountsError(f"{path}: not a JSON object with a string 'default'") from None
    return value if isinstance(value, str) else ""


def _read(path: Path) -> dict[str, object]:
    try:
        info = json.loads((path / MERCHANT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AccountsError(
            f"account {path.name}: {MERCHANT_FILE} unreadable ({type(exc).__name__})"
        ) from None
    if not isinstance(info, dict):
        raise AccountsError(f"account {path.name}: {MERCHANT_FILE} must be a JSON object")
    info.setdefault("kind", "direct")
    if info["kind"] not in KINDS:
        raise AccountsError(f"account {path.name}: kind must be one of {', '.join(KINDS)}")
    info["apps"] = _apps(path.name, info.get("apps", {}))
    return info


def _apps(name: str, apps: object) -> dict[str, str]:
    if not isinstance(apps, dict):
        raise AccountsError(f"account {name}: apps must map channels to appids")
    out: dict[str, str] = {}
    for channel, appid in apps.items():
        upper = str(channel).upper()
        if upper not in CHANNELS:
            raise AccountsError(f"account {name}: unknown channel {channel!r} (one of {', '.join(CHANNELS)})")
        if not isinstance(appid, str) or not appid:
            raise AccountsError(f"account {name}: channel {upper} has no app")
        out[upper] = appid
    return out


def _platform_account(path: Path, info: dict[str, object]) -> Account:
    try:
        credentials = load_credentials(path)
    except CredentialsError as exc:
        raise AccountsError(f"account {path.name}: {exc}") from None
    apps = dict(info["apps"])  # type: ignore[call-overload]
    if not apps:
        apps = dict.fromkeys(CHANNELS, credentials.appid)  # a bundle without apps: its appid everywhere
    key_mode = str(info.get("key_mode") or "")
    if key_mode == "certificate" and credentials.platform_certificate is None:
        raise AccountsError(f"account {path.name}: key_mode certificate needs {PLATFORM_CERT_FILE}")
    # A public key given beside the certificate keeps verifying: WeChat ramps this account's callbacks
    # over to it during its public-key migration, with no restart here (docs/going-live.md).
    return Account(path.name, str(info["kind"]), credentials, apps, key_mode)


def _sub_merchant(name: str, info: dict[str, object], accounts: Mapping[str, Account]) -> Account:
    provider_name, sub_mchid = info.get("provider"), info.get("sub_mchid")
    provider = accounts.get(str(provider_name)) if provider_name else None
    if provider is None or provider.kind != "provider":
        raise AccountsError(f"account {name}: sub-merchant without a provider account ({provider_name!r})")
    if not isinstance(sub_mchid, str) or not sub_mchid:
        raise AccountsError(f"account {name}: sub-merchant needs sub_mchid")
    sub_apps: dict[str, str] = dict(info["apps"])  # type: ignore[call-overload]
    return Account(
        name, "sub_merchant", provider.credentials, provider.apps, provider.key_mode,
        provider=provider.name, sub_mchid=sub_mchid, sub_apps=sub_apps,
    )  # fmt: skip


def _check_apps(accounts: Mapping[str, Account]) -> None:
    """An app (appid) belongs to one account per channel: listed twice, an order could not say whose it is.
    A sub-merchant paying under its provider's app does not list it; only its own sub_appids count."""
    owners: dict[tuple[str, str], str] = {}
    for account in accounts.values():
        listed = account.sub_apps if account.partner else account.apps
        for channel, appid in listed.items():
            other = owners.setdefault((channel, appid), account.name)
            if other != account.name:
                raise AccountsError(
                    f"app {appid} is listed under accounts {other} and {account.name} for channel {channel}"
                )


def account_router(accounts: Accounts, routes: str) -> AccountRouter:
    """The routing rule (ORDERPAY_ACCOUNT_ROUTES) checked against the accounts that exist."""
    try:
        by_product = parse_routes(routes)
    except ValueError as exc:
        raise AccountsError(f"ORDERPAY_ACCOUNT_ROUTES: {exc}") from None
    for product, name in by_product.items():
        if name not in accounts.by_name:
            problem = f"product {product} goes to unknown account {name!r}"
            raise AccountsError(f"ORDERPAY_ACCOUNT_ROUTES: {problem}")
    return AccountRouter(accounts.default_name, by_product, frozenset(accounts.by_name))
