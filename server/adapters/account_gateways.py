"""Each configured merchant account's WeChat Pay gateway, its identity and its notification keys.

One client (signing key, key store, connection pool, breaker) per account that signs: a direct merchant
or a service provider. A sub-merchant's gateway speaks the partner API over its provider's client
(server.wxpay.partner) and verifies with its provider's keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from server.adapters.gateways import MerchantGateways
from server.config import Settings
from server.domain.provider import MerchantIdentity
from server.service.ports import PaymentGateway
from server.wxpay.accounts import Account, Accounts
from server.wxpay.certificates import KeyStore
from server.wxpay.client import WeChatPayClient, from_settings
from server.wxpay.credentials import MerchantCredentials
from server.wxpay.gateway import WeChatPayGateway
from server.wxpay.partner import PartnerOperations
from server.wxpay.signing import VerifierKeys
from server.wxpay.transport import Observer

NotifyKeys = dict[str, tuple[MerchantCredentials, VerifierKeys | KeyStore]]


def identity_of(account: Account) -> MerchantIdentity:
    return MerchantIdentity(
        merchant_id=account.mchid,
        app_id=account.credentials.appid,
        account=account.name,
        sub_merchant_id=account.sub_mchid,
        app_ids=frozenset(account.apps.values()) | frozenset(account.sub_apps.values()),
    )


@dataclass(frozen=True)
class AccountGateways:
    gateways: MerchantGateways
    notify_keys: NotifyKeys  # account -> the credentials and keys its notifications verify with
    clients: dict[str, WeChatPayClient]  # the signing accounts' clients, by account name


def wechat_gateways(
    settings: Settings, accounts: Accounts, observer_for: Callable[[str], Observer]
) -> AccountGateways:
    """`observer_for(account)`: the signing account's call observer (its metrics label is the
    configured name)."""
    clients: dict[str, WeChatPayClient] = {}
    for account in accounts:
        if not account.partner:
            observer = observer_for(account.name)
            clients[account.name] = from_settings(
                settings, account.credentials, observer=observer, sign_mode=account.sign_mode
            )
    built: dict[MerchantIdentity, PaymentGateway] = {}
    keys: NotifyKeys = {}
    for account in accounts:
        signer = clients[account.provider or ""] if account.partner else clients[account.name]
        if account.partner:
            operations = PartnerOperations(signer, account.sub_mchid or "")
            gateway = WeChatPayGateway(operations, account.apps, account.sub_apps)
        else:
            gateway = WeChatPayGateway(signer, account.apps)
        built[identity_of(account)] = gateway
        keys[account.name] = (account.credentials, signer.key_store)  # one key store: client and sidecar
    return AccountGateways(MerchantGateways(built), keys, clients)


def replaced_gateway(accounts: Accounts, gateway: PaymentGateway) -> AccountGateways:
    """Tests that replace WeChat Pay: the one gateway serves the default account, fixed keys verify."""
    default = accounts.default
    keys: NotifyKeys = {default.name: (default.credentials, default.credentials.verifier_keys())}
    return AccountGateways(MerchantGateways.single(identity_of(default), gateway), keys, {})
