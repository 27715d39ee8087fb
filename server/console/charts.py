"""Small charts as inline SVG (no script, no CDN): bars over time and labelled horizontal bars.

Drawn server-side from the overview's figures; every value is also in a <title> (a tooltip and what a
screen reader reads), and text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 600, 160, 24


def column_chart(values: Sequence[int], labels: Sequence[str], title: str, css: str = "series-a") -> Markup:
    """One column per bucket (e.g. per hour), the first and last label under the axis."""
    top = max(values, default=0) or 1
    step = (WIDTH - 2 * PAD) / max(len(values), 1)
    bars = []
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        height = (HEIGHT - 2 * PAD) * value / top
        x = PAD + i * step
        y = HEIGHT - PAD - height
        width = max(step - 2, 1)
        bars.append(
            f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
    first, last = (escape(labels[0]), escape(labels[-1])) if labels else ("", "")
    return Markup(  # noqa: S704 - every interpolated text is escaped above; numbers are formatted
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<line class="axis" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}"/>'
        f'<text class="tick" x="{PAD}" y="{PAD - 8}">max {top}</text>'
        f"{''.join(bars)}"
        f'<text class="tick" x="{PAD}" y="{HEIGHT - 6}">{first}</text>'
        f'<text class="tick end" x="{WIDTH - PAD}" y="{HEIGHT - 6}">{last}</text>'
        "</svg>"
    )


def bar_list(items: Sequence[tuple[str, int]], title: str, css: str = "series-b") -> Markup:
    """Horizontal bars with their label and count, one row per item."""
    row, label_w = 26, 190
    height = max(len(items), 1) * row + 8
    top = max((v for _, v in items), default=0) or 1
    rows = []
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        width = (WIDTH - label_w - 60) * value / top
        rows.append(
            f'<text class="label" x="0" y="{y + 17}">{escape(label)}</text>'
            f'<rect class="{css}" x="{label_w}" y="{y + 4}" width="{width:.1f}" height="{row - 10}">'
            f"<title>{escape(label)}: {value}</title></rect>"
            f'<text class="value" x="{label_w + width + 6:.1f}" y="{y + 17}">{value}</text>'
        )
    if not items:
        rows.append('<text class="label" x="0" y="20">no data yet</text>')
    return Markup(  # noqa: S704 - every interpolated text is escaped above; numbers are formatted
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(rows)}</svg>"
    )
