"""Headless Chromium for the browser tests: Debian's binary, and the page checks every screenshot gets
(no glyph drawn as a missing-glyph box, nothing wider than the viewport)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"
WIDTHS = (1280, 390)

# Draws each distinct non-ASCII character of the page in the page's own font and compares it with a
# code point no font has (U+10FFFD): a character that draws the same as that is a missing-glyph box.
GLYPH_CHECK = """() => {
  const chars = [...new Set([...document.body.innerText].filter(c => c.codePointAt(0) > 0x7f && c.trim()))];
  const font = getComputedStyle(document.body).fontFamily;
  const canvas = document.createElement('canvas'); canvas.width = 48; canvas.height = 48;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const draw = (c) => { ctx.clearRect(0, 0, 48, 48); ctx.font = `28px ${font}`; ctx.textBaseline = 'top';
    ctx.fillText(c, 6, 6); return Array.from(ctx.getImageData(0, 0, 48, 48).data).join(','); };
  const box = draw('\\u{10FFFD}');
  return {checked: chars.length, boxesAgree: box === draw('\\u{10FFFC}'),
          missing: chars.filter(c => draw(c) === box)};
}"""


def capture(page: Page, folder: Path, name: str) -> None:
    """Screenshot at 1280 and 390 px into `folder`; fails on a missing glyph or a sideways scroll."""
    folder.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        glyphs: dict[str, Any] = page.evaluate(GLYPH_CHECK)
        assert glyphs["boxesAgree"], f"{name}@{width}: the missing-glyph probe is not reliable here"
        assert glyphs["missing"] == [], f"{name}@{width}: no glyph for {glyphs['missing']}"
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name}@{width}: {overflow} px wider than the viewport"
    page.set_viewport_size({"width": 1280, "height": 900})
