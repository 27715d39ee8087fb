"""Every account the sandbox plays, in one process: a book (a `Sandbox`) per direct merchant, per
service provider and per sub-merchant, sharing one clock.

Books are keyed by (mchid, sub_mchid): a direct merchant's trades live under (mchid, None), a
sub-merchant's under (sp_mchid, sub_mchid), so two accounts' `out_trade_no` never meet, as at WeChat
where an order number is unique per merchant. A sub-merchant's book signs and seals with its
provider's keys. An openid belongs to the appid it was first used with (openids are per app).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

from aiohttp import web

from sandbox.api import errors
from sandbox.api.errors import ApiError
from sandbox.config import SandboxConfig
from sandbox.engine.clock import SandboxClock, as_sandbox_clock
from sandbox.engine.models import Trade
from sandbox.engine.state import Clock, Sandbox, utc_now

BookKey = tuple[str, str | None]


class World:
    def __init__(self, books: dict[BookKey, Sandbox], primary: Sandbox) -> None:
        self.books = books
        self.primary = primary
        self._openids: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def build(cls, config: SandboxConfig, clock: Clock | SandboxClock = utc_now) -> World:
        shared = as_sandbox_clock(clock)
        if not config.accounts:
            primary = Sandbox.build(config, shared)
            return cls({(primary.mchid, None): primary}, primary)
        books: dict[BookKey, Sandbox] = {}
        by_name: dict[str, Sandbox] = {}
        for spec in config.accounts:
            if spec.credentials is None:
                continue
            own = dataclasses.replace(
                config, credentials=spec.credentials, key_mode=spec.key_mode or config.key_mode, accounts=()
            )
            book = Sandbox.build(own, shared, kind=spec.kind, appids=spec.appids, name=spec.name)
            books[(book.mchid, None)] = by_name[spec.name] = book
        for spec in config.accounts:
            if spec.kind != "sub_merchant":
                continue
            provider = by_name[spec.provider or ""]
            own = dataclasses.replace(config, credentials=provider.credentials, accounts=())
            book = Sandbox.build(
                own, shared, keys=provider.keys, kind=spec.kind, sub_mchid=spec.mchid,
                appids=spec.appids, name=spec.name,
            )  # fmt: skip
            books[(provider.mchid, spec.mchid)] = book
        primary = next(b for b in books.values() if b.credentials.mchid == config.credentials.mchid)
        return cls(books, primary)

    def __iter__(self) -> Iterator[Sandbox]:
        return iter(self.books.values())

    def platform_account(self, mchid: str) -> Sandbox | None:
        """The direct merchant or provider whose keys sign for `mchid` (None: not ours)."""
        return self.books.get((mchid, None))

    def sub_merchant(self, sp_mchid: str, sub_mchid: str, *, refund: bool = False) -> Sandbox:
        """The provider's book for `sub_mchid`: MCH_NOT_EXISTS when no such sub-merchant exists at all,
        NO_AUTH when it exists under another provider (no 受理关系 with this one)."""
        book = self.books.get((sp_mchid, sub_mchid))
        if book is not None:
            return book
        if any(key[1] == sub_mchid for key in self.books):
            raise ApiError(403, "NO_AUTH", "服务商与特约商户不存在受理关系")
        raise ApiError(404 if refund else 400, "MCH_NOT_EXISTS", "特约商户号不存在")

    def bind_openid(self, openid: str | None, appid: str) -> None:
        """An openid is issued per appid: the first appid it is used with owns it from then on."""
        if not openid:
            return
        with self._lock:
            owner = self._openids.setdefault(openid, appid)
        if owner != appid:
            raise errors.param_error("/payer/openid", "openid与appid不匹配", openid)

    def find(self, out_trade_no: str, mchid: str | None = None, sub_mchid: str | None = None) -> Sandbox:
        """The book holding `out_trade_no` for the control API: named by mchid (+ sub_mchid), or the one
        book that has it (an order number two accounts share needs the mchid)."""
        if mchid is not None:
            book = self.books.get((mchid, sub_mchid))
            if book is None:
                raise ApiError(404, "MCH_NOT_EXISTS", f"no account {mchid}/{sub_mchid}")
            return book
        holders = [book for book in self if book.backend.has_trade(out_trade_no)]
        if len(holders) > 1:
            raise ApiError(
                400, "INVALID_REQUEST", f"{out_trade_no} exists under several accounts: give ?mchid="
            )
        return holders[0] if holders else self.primary

    def by_token(self, token: str) -> tuple[Sandbox, Trade]:
        for book in self:
            if book.backend.has_token(token):
                return book, book.backend.trade_by_token(token)
        raise errors.order_not_exist()

    async def start(self) -> None:
        for book in self:
            await book.notifier.start()

    async def stop(self) -> None:
        for book in self:
            await book.simulator.stop()
            await book.notifier.stop()

    async def reset(self) -> None:
        for book in self:
            await book.reset()
        with self._lock:
            self._openids.clear()

    def describe(self) -> list[dict[str, object]]:
        return [
            {
                "name": book.name,
                "kind": book.kind,
                "mchid": book.mchid,
                "sub_mchid": book.sub_mchid,
                "appids": sorted(book.appids),
                "key_mode": book.keys.mode if book.sub_mchid is None else None,
            }
            for book in self
        ]


WORLD = web.AppKey("sandbox_world", World)


def book_for(request: web.Request) -> Sandbox:
    """The control API's book: `?mchid=` (+ `&sub_mchid=`) names one; without, the primary account."""
    world = request.app[WORLD]
    mchid = request.query.get("mchid")
    if mchid is None:
        return world.primary
    book = world.books.get((mchid, request.query.get("sub_mchid")))
    if book is None:
        raise ApiError(404, "MCH_NOT_EXISTS", f"no account {mchid}")
    return book
