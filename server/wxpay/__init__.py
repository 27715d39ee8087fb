"""Merchant-side WeChat Pay APIv3: credentials, signatures, notifications and the HTTP client.

An anti-corruption layer: WeChat's wire format stops here. Callers get plain dicts and frozen
dataclasses, and failures as `server.domain.errors` types (or `NotificationRejected` for inbound
notifications). Nothing here knows about gRPC or aiohttp.
"""
