"""Free text from outside (clients, operators, WeChat's bills) and what may reach a terminal or page.

Control (Cc: ESC, DEL, the C1 range whose U+009B is CSI on 8-bit terminals) and format (Cf: U+202E
reverses the rest of a line, zero-width characters hide text) characters, and line or paragraph
separators, are refused in every free-text input; what is already stored is escaped when shown.
"""

from __future__ import annotations

import unicodedata

_REFUSED = frozenset({"Cc", "Cf", "Zl", "Zp"})


def has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in _REFUSED for ch in text)


def escape_nonprintable(text: str) -> str:
    """`A\\x1b[2J` for `A<ESC>[2J`: anything but a printable character or a space, as a Python escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
