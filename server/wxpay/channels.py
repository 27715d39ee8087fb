"""WeChat Pay's pay channels: the one table of which prepay endpoint each uses and how long a prepay lasts.

Everything else (the request bodies, the client's paths, the service's reuse rule) reads it from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Final

from server.domain.provider import ChannelRules

# Our channel -> WeChat's prepay endpoint, `/v3/pay/transactions/{endpoint}` (research §3).
# Mini-programs pay through the JSAPI endpoint (research §11), so the two share one prepay.
ENDPOINTS: Final[Mapping[str, str]] = MappingProxyType(
    {"JSAPI": "jsapi", "MINIPROGRAM": "jsapi", "APP": "app", "NATIVE": "native", "H5": "h5"}
)
PAYER_ENDPOINTS: Final = frozenset({"jsapi"})  # the payer's openid goes in the body
CLIENT_IP_ENDPOINTS: Final = frozenset({"h5"})  # the browser's IP goes in scene_info
SIGNED_PARAMS_ENDPOINTS: Final = frozenset({"jsapi", "app"})  # the client pays with signed parameters

# How long WeChat keeps a prepay payable, by endpoint (research §3.3): H5 pages 5 minutes, the rest 2 h.
PREPAY_VALIDITY: Final[Mapping[str, timedelta]] = MappingProxyType({"h5": timedelta(minutes=5)})
DEFAULT_PREPAY_VALIDITY: Final = timedelta(hours=2)


def endpoint_of(channel: str) -> str | None:
    """The prepay endpoint of one of our channels (any case), or None for a channel WeChat lacks."""
    return ENDPOINTS.get(channel.upper())


def prepay_path(endpoint: str) -> str:
    return f"/v3/pay/transactions/{endpoint}"


def prepay_validity(endpoint: str) -> timedelta:
    return PREPAY_VALIDITY.get(endpoint, DEFAULT_PREPAY_VALIDITY)


def channel_rules(channel: str) -> ChannelRules | None:
    """The channel in our terms: what it needs and which prepay it shares. None: not a channel."""
    endpoint = ENDPOINTS.get(channel)
    if endpoint is None:
        return None
    return ChannelRules(
        channel=channel,
        family=endpoint,
        needs_payer=endpoint in PAYER_ENDPOINTS,
        needs_client_ip=endpoint in CLIENT_IP_ENDPOINTS,
    )
