"""The public `wechatpayv3` SDK's callback on a notification the sandbox sent (interop tests)."""

from __future__ import annotations

from typing import Any

from wechatpayv3 import WeChatPay

from sandbox.testing import Received


def sdk_callback(wxpay: WeChatPay, received: Received) -> dict[str, Any]:
    result = wxpay.callback(received.headers, received.body)
    assert result is not None, "the SDK rejected the sandbox's notification"
    decoded: dict[str, Any] = result
    return decoded
