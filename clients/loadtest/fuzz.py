"""Hostile notifications for the `notify-fuzz` drill: mutated, forged, replayed, garbage.

Each variant starts from a genuinely signed notification for a real unpaid order and breaks exactly
one thing, so every one of them must be refused (4xx) and none may pay its order.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from clients.loadtest.notifications import NotificationSigner, SignedNotification

REPLAY_AGE_S = 600  # a notification captured ten minutes ago, sent again

# Dropping Wechatpay-Signature-Type leaves a genuine, verifiable notification (WeChat's Go and Java
# SDKs default the type when absent, and so do we), so it is not a hostile variant.
_REQUIRED = ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial", "Wechatpay-Signature")


@dataclass(frozen=True)
class Variant:
    kind: str
    body: bytes
    headers: dict[str, str]


def _flip_byte(note: SignedNotification, rng: random.Random) -> Variant:
    body = bytearray(note.body)
    at = rng.randrange(len(body))
    body[at] = (body[at] + rng.randrange(1, 255)) % 256
    return Variant("body_byte_flipped", bytes(body), dict(note.headers))


def _truncated(note: SignedNotification, rng: random.Random) -> Variant:
    return Variant("body_truncated", note.body[: rng.randrange(len(note.body))], dict(note.headers))


def _header_changed(note: SignedNotification, rng: random.Random) -> Variant:
    headers = dict(note.headers)
    name = rng.choice(_REQUIRED)
    headers[name] = headers[name][:-1] + ("0" if headers[name][-1:] != "0" else "1")
    return Variant(f"header_changed:{name}", note.body, headers)


def _header_missing(note: SignedNotification, rng: random.Random) -> Variant:
    headers = dict(note.headers)
    name = rng.choice(_REQUIRED)
    del headers[name]
    return Variant(f"header_missing:{name}", note.body, headers)


def _signature_probe(note: SignedNotification, rng: random.Random) -> Variant:
    headers = dict(note.headers, **{"Wechatpay-Signature": f"WECHATPAY/SIGNTEST/{rng.getrandbits(64):x}"})
    return Variant("signtest_probe", note.body, headers)


def _amount_rewritten(note: SignedNotification, rng: random.Random) -> Variant:
    envelope = json.loads(note.body)
    envelope["resource"]["ciphertext"] = envelope["resource"]["ciphertext"][::-1]
    del rng
    return Variant("ciphertext_tampered", json.dumps(envelope).encode(), dict(note.headers))


def _garbage(note: SignedNotification, rng: random.Random) -> Variant:
    return Variant("garbage", rng.randbytes(rng.randrange(1, 512)), dict(note.headers))


MUTATIONS: tuple[Callable[[SignedNotification, random.Random], Variant], ...] = (
    _flip_byte,
    _truncated,
    _header_changed,
    _header_missing,
    _signature_probe,
    _amount_rewritten,
    _garbage,
)


def hostile_variants(
    signer: NotificationSigner, orders: list[tuple[str, int]], count: int, seed: int = 7
) -> list[Variant]:
    """`count` hostile deliveries over `orders` ((out_trade_no, total_fee)), reproducible from `seed`."""
    rng = random.Random(seed)
    genuine = [signer.transaction_success(no, fee) for no, fee in orders]
    replayed = [
        signer.transaction_success(no, fee, signed_at=time.time() - REPLAY_AGE_S) for no, fee in orders
    ]
    variants = []
    for i in range(count):
        if i % 8 == 7:  # a correctly signed notification, but captured long ago
            note = replayed[i % len(replayed)]
            variants.append(Variant("replayed_stale", note.body, dict(note.headers)))
        else:
            variants.append(rng.choice(MUTATIONS)(genuine[i % len(genuine)], rng))
    return variants
