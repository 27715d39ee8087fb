"""WeChat Pay's error answers, as values that carry their own HTTP status (moto's `exceptions.py`)."""

from __future__ import annotations

from typing import Any

# Internal codes WeChat appends to Request-ID on failure (`{id}-{code}`); `-0` means success.
_INTERNAL_CODES = {
    "PARAM_ERROR": 268435461,
    "INVALID_REQUEST": 268498688,
    "ORDERPAID": 268449538,
    "ORDER_CLOSED": 268447914,
    "ORDER_NOT_EXIST": 268512771,
    "RESOURCE_NOT_EXISTS": 268512771,
    "SIGN_ERROR": 268443699,
    "APPID_MCHID_NOT_MATCH": 268445527,
    "FREQUENCY_LIMITED": 268447840,
}


class ApiError(Exception):
    """An emulated API failure: HTTP status + `{"code", "message", "detail"?}` body."""

    def __init__(self, status: int, code: str, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return body

    @property
    def internal_code(self) -> int:
        return _INTERNAL_CODES.get(self.code, 268435456)


def param_error(field: str, issue: str, value: Any = None, location: str = "body") -> ApiError:
    """400 PARAM_ERROR worded like the gateway's (`field` is a JSON pointer for body fields)."""
    source = f"/{location}{field}" if location == "body" else f"/{location}/{field}"
    detail = {"location": location, "field": field, "value": value, "issue": issue}
    return ApiError(400, "PARAM_ERROR", f"输入源“{source}”映射到字段校验失败：{issue}", detail)


def invalid_request(message: str) -> ApiError:
    return ApiError(400, "INVALID_REQUEST", message)


def order_not_exist() -> ApiError:
    return ApiError(404, "ORDER_NOT_EXIST", "订单不存在")


def order_paid() -> ApiError:
    return ApiError(400, "ORDERPAID", "订单已支付")


def order_closed() -> ApiError:
    return ApiError(400, "ORDER_CLOSED", "订单已关闭")


def resource_not_exists(message: str) -> ApiError:
    return ApiError(404, "RESOURCE_NOT_EXISTS", message)


def sign_error(message: str) -> ApiError:
    return ApiError(401, "SIGN_ERROR", message)


INJECTED_ERRORS = {
    "SYSTEM_ERROR": ApiError(500, "SYSTEM_ERROR", "系统繁忙，请稍后重试"),
    "FREQUENCY_LIMITED": ApiError(429, "FREQUENCY_LIMITED", "请求频率超过限制"),
    "BANKERROR": ApiError(500, "BANKERROR", "银行系统异常"),
}
