"""Several merchant accounts from one credentials directory: loaded once, every mistake one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sandbox.keys.accounts import init_accounts
from sandbox.keys.bundle import init_bundle
from server.wxpay.accounts import CHANNELS, AccountsError, load_accounts


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("accounts")
    init_accounts(directory)
    return directory


@pytest.fixture
def copy(demo: Path, tmp_path: Path) -> Path:
    target = tmp_path / "keys"
    shutil.copytree(demo, target)
    return target


def edit(path: Path, **changes: object) -> None:
    info = json.loads(path.read_text())
    info.update(changes)
    path.write_text(json.dumps(info))


def test_the_one_account_layout_is_the_default_account(tmp_path: Path) -> None:
    info = init_bundle(tmp_path)
    accounts = load_accounts(tmp_path)
    assert accounts.names == ("default",)
    assert accounts.default.mchid == info["mchid"]
    assert {accounts.default.app_for(channel) for channel in CHANNELS} == {info["appid"]}


def test_the_demo_set_has_two_direct_merchants_and_a_provider_with_two_sub_merchants(demo: Path) -> None:
    accounts = load_accounts(demo)
    kinds = {account.name: account.kind for account in accounts}
    assert kinds == {
        "direct-pk": "direct", "direct-cert": "direct", "sp": "provider",
        "sp-sub-a": "sub_merchant", "sp-sub-b": "sub_merchant",
    }  # fmt: skip
    sp, sub_a = accounts.get("sp"), accounts.get("sp-sub-a")
    assert sp is not None
    assert sub_a is not None
    assert sub_a.credentials is sp.credentials  # the provider's keys sign for its sub-merchants
    assert sub_a.mchid == sp.mchid
    assert sub_a.sub_mchid
    assert sub_a.partner
    assert set(sub_a.sub_apps) == {"MINIPROGRAM"}
    assert sub_a.app_for("JSAPI") == sp.app_for("JSAPI")
    direct_cert = accounts.get("direct-cert")
    assert direct_cert is not None
    assert direct_cert.key_mode == "certificate"
    assert direct_cert.sign_mode == "cert"  # answers signed with the platform certificate ...
    assert direct_cert.credentials.wechatpay_public_key is not None  # ... the public key still verifies
    assert accounts.default.sign_mode == "pubkey"
    assert accounts.default.name == "direct-pk"  # the directory's accounts.json says so


def test_without_accounts_json_the_default_is_the_first_by_name(copy: Path) -> None:
    (copy / "accounts.json").unlink()
    assert load_accounts(copy).default.name == "direct-cert"


def test_the_default_account_can_be_chosen_and_must_exist(demo: Path) -> None:
    assert load_accounts(demo, "sp-sub-b").default.name == "sp-sub-b"
    with pytest.raises(AccountsError, match="default account 'nope' is not one of"):
        load_accounts(demo, "nope")


def test_a_broken_account_names_itself(copy: Path) -> None:
    (copy / "direct-cert" / "merchant_private_key.pem").unlink()
    with pytest.raises(AccountsError, match=r"^account direct-cert: missing .*merchant_private_key.pem$"):
        load_accounts(copy)


def test_a_sub_merchant_without_a_provider_is_refused(copy: Path) -> None:
    edit(copy / "sp-sub-b" / "merchant.json", provider="direct-pk")
    with pytest.raises(AccountsError, match=r"^account sp-sub-b: sub-merchant without a provider account"):
        load_accounts(copy)


def test_an_app_listed_under_two_accounts_for_one_channel_is_refused(copy: Path) -> None:
    taken = json.loads((copy / "direct-pk" / "merchant.json").read_text())["apps"]["app"]
    cert = copy / "direct-cert" / "merchant.json"
    apps = json.loads(cert.read_text())["apps"]
    edit(cert, apps={**apps, "app": taken})
    with pytest.raises(
        AccountsError, match=f"app {taken} is listed under accounts direct-cert and direct-pk for channel APP"
    ):
        load_accounts(copy)


def test_a_channel_with_no_app_is_refused(copy: Path) -> None:
    edit(copy / "sp" / "merchant.json", apps={"jsapi": "wx1", "h5": ""})
    with pytest.raises(AccountsError, match=r"^account sp: channel H5 has no app$"):
        load_accounts(copy)


def test_an_unknown_channel_or_kind_is_refused(copy: Path) -> None:
    edit(copy / "sp" / "merchant.json", apps={"pos": "wx1"})
    with pytest.raises(AccountsError, match=r"^account sp: unknown channel 'pos'"):
        load_accounts(copy)
    edit(copy / "sp" / "merchant.json", kind="bank", apps={})
    with pytest.raises(AccountsError, match=r"^account sp: kind must be one of"):
        load_accounts(copy)


def test_repr_never_shows_a_secret(demo: Path) -> None:
    for account in load_accounts(demo):
        assert account.credentials.apiv3_key not in repr(account)
