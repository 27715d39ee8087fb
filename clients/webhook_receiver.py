"""A receiver for orderpay's signed webhooks (docs/event-feed.md § Webhooks), complete.

ORDERPAY_WEBHOOK_SECRET=whsec_... python -m clients.webhook_receiver [PORT]
orderpay events register my-crm --webhook-url http://127.0.0.1:PORT/orderpay   (prints the secret)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time

from aiohttp import web

TOLERANCE_S = 300  # refuse a timestamp this far from now: a captured request cannot be replayed later


def verify(secret: str, timestamp: str, signatures: str, body: bytes, now: float | None = None) -> bool:
    """HMAC-SHA256 over `timestamp + "." + body`; any `v1=` entry may match (two during a rotation)."""
    if not timestamp.isdigit() or abs((time.time() if now is None else now) - int(timestamp)) > TOLERANCE_S:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    given = [
        part.strip().removeprefix("v1=") for part in signatures.split(",") if part.strip().startswith("v1=")
    ]
    return any(hmac.compare_digest(expected, candidate) for candidate in given)


def receiver(secret: str) -> web.Application:
    done = {"position": 0}  # keep it with your own data: events come in order, at least once

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = request.headers
        if not verify(
            secret, headers.get("Orderpay-Timestamp", ""), headers.get("Orderpay-Signature", ""), body
        ):
            return web.Response(status=400, text="bad signature")
        event = json.loads(body)  # orderpay.v1.FeedEvent in proto3 JSON: int64 fields are strings
        position = int(event["position"])
        if position > done["position"]:  # a retry may bring one again: skip what was done
            print(position, event["type"], event.get("orderId", ""), flush=True)
            done["position"] = position
        return web.Response(status=204)  # any 2xx acknowledges; anything else is retried later

    app = web.Application()
    app.router.add_post("/orderpay", receive)
    return app


if __name__ == "__main__":
    port = int(sys.argv[1]) if sys.argv[1:] else 8089
    web.run_app(receiver(os.environ["ORDERPAY_WEBHOOK_SECRET"]), host="127.0.0.1", port=port)
