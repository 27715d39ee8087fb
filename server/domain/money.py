"""Amounts as a person reads them: fen (the machine unit, WeChat's `amount.total`) shown in yuan."""

from __future__ import annotations


def yuan(fen: int) -> str:
    """1800 -> "¥18.00"; -5 -> "-¥0.05" (text for people; JSON and the database keep fen)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole}.{cents:02d}"
