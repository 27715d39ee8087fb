"""`orderpay loadtest --report FILE.html`: one self-contained page a person would rather look at.

It is drawn from the run's JSON document (the one `--json` prints), so the page and the JSON never
disagree: the figures, a latency histogram with p50/p95/p99 marked, calls per second over time
(failures stacked in red), the errors by reason and the invariant verdicts. Inline SVG and CSS only:
no script, no font, no image and no stylesheet is fetched, so the file opens anywhere, offline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 44
OK_COLOUR, ERROR_COLOUR, MARK_COLOUR, AXIS_COLOUR = "#07c160", "#d93025", "#1a73e8", "#888"
FIGURES = (
    ("items", "items"),
    ("calls", "calls"),
    ("ok", "ok"),
    ("elapsed_s", "elapsed s"),
    ("throughput", "ok/s"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("max_ms", "max ms"),
)
STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 800px; color: #222;
       padding: 0 12px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { font-weight: bold; padding: 8px 12px; border-radius: 4px; display: inline-block; }
.pass { background: #e6f6ec; color: #05712f; } .fail { background: #fdecea; color: #a50e0e; }
svg { max-width: 100%; height: auto; } svg text { font-size: 11px; fill: #444; }
svg text.mark { paint-order: stroke; stroke: #fff; stroke-width: 4px; stroke-linejoin: round; }
.muted { color: #777; font-size: 13px; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(84px, 1fr)); gap: 8px; }
.figures div { background: #f6f6f6; border-radius: 6px; padding: 6px 8px; }
.figures span { display: block; font-size: 12px; color: #666; }
.figures b { font-size: 17px; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; } td { overflow-wrap: anywhere; }
/* A phone draws the 760-unit charts at about half size: larger text keeps the axes readable there. */
@media (max-width: 600px) { svg text { font-size: 20px; } }
"""


def render_report(run: Mapping[str, Any]) -> str:
    """The page for one run, from the document `--json` prints."""
    summary = run["summary"]
    title = f"orderpay loadtest {summary['name']}"
    verdict = (
        '<p class="verdict pass">passed</p>'
        if run["ok"]
        else '<p class="verdict fail">FAILED</p>' + "".join(f"<p>{escape(f)}</p>" for f in run["failures"])
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">run {escape(str(run["run_id"]))} · targets {escape(", ".join(run["targets"]))}'
        f" · concurrency {run['concurrency']} · duplicates {run['duplicates']}</p>",
        _provenance_line(run.get("provenance")),
        verdict,
        _figures_table(summary),
        _scenario_figures(summary.get("extra") or {}),
        "<h2>Latency distribution</h2>",
        '<p class="muted">successful calls per latency bucket (log scale, five buckets per decade);'
        " the lines mark p50, p95 and p99</p>",
        histogram_svg(summary["latency_histogram"], summary),
        "<h2>Throughput over time</h2>",
        '<p class="muted">calls finished per second in each slice of the run: ok in green, failed in red</p>',
        timeline_svg(summary["timeline"]),
        _errors_table(summary["errors"]),
        _invariants_table(run.get("invariants")),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _figures_table(summary: Mapping[str, Any]) -> str:
    # Tiles rather than one wide row: they wrap on a phone instead of scrolling sideways.
    tiles = "".join(
        f"<div><span>{escape(label)}</span><b>{_figure(summary, key)}</b></div>" for key, label in FIGURES
    )
    return f'<div class="figures">{tiles}</div>'


def _scenario_figures(extra: Mapping[str, Any]) -> str:
    """The scenario's own figures (a duplicate storm's first answers, replays and split keys, ...)."""
    if not extra:
        return ""
    tiles = "".join(
        f"<div><span>{escape(key.replace('_', ' '))}</span><b>{escape(_plain(value))}</b></div>"
        for key, value in extra.items()
    )
    return f'<h2>Scenario figures</h2><div class="figures scenario">{tiles}</div>'


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):  # e.g. answers by kind: "kind 12 · other 3", not a Python dict
        return " · ".join(f"{k} {_plain(v)}" for k, v in value.items()) or "none"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _provenance_line(found: Mapping[str, Any] | None) -> str:
    if not found:
        return ""
    shown = (
        f"orderpay {found.get('version')} @ {found.get('commit')} · host {found.get('host')}"
        f" ({found.get('cores')} cores, Python {found.get('python')}) · started {found.get('started_at')}"
    )
    return f'<p class="muted provenance">{escape(shown)}</p>'


def _figure(summary: Mapping[str, Any], key: str) -> str:
    if key.endswith("_ms") and not summary["ok"]:
        return "-"  # no successful call, no latency
    value = summary[key]
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def _errors_table(errors: Mapping[str, int]) -> str:
    if not errors:
        return "<h2>Errors</h2><p>none</p>"
    rows = "".join(f'<tr><td>{escape(r)}</td><td class="n">{n:,}</td></tr>' for r, n in errors.items())
    head = '<tr><th>reason</th><th class="n">count</th></tr>'
    return f'<h2>Errors</h2><div class="scroll"><table>{head}{rows}</table></div>'


def _invariants_table(invariants: Mapping[str, Any] | None) -> str:
    if invariants is None:
        return "<h2>Database invariants</h2><p>not checked (--no-check)</p>"
    rows = []
    for check in invariants["results"]:
        verdict = "ok" if check["ok"] else f"FAILED ×{check['violations']}"
        detail = check["says"] + ("" if check["ok"] else ": " + "; ".join(check["examples"]))
        css = "pass" if check["ok"] else "fail"
        rows.append(
            f'<tr><td>{escape(check["name"])}</td><td class="{css}">{escape(verdict)}</td>'
            f"<td>{escape(detail)}</td></tr>"
        )
    return (
        '<h2>Database invariants</h2><div class="scroll"><table>'
        "<tr><th>check</th><th>verdict</th><th>rule / examples</th></tr>" + "".join(rows) + "</table></div>"
    )


def histogram_svg(buckets: Sequence[Mapping[str, float]], summary: Mapping[str, Any]) -> str:
    """Bars of equal width, one per bucket (the buckets are log-spaced, so the x axis is log)."""
    if not buckets:
        return _empty_svg("no successful call, so no latency to show")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    peak = max(b["count"] for b in buckets)
    bar_w = plot_w / len(buckets)
    low = math.log10(_lower_edge(buckets[0]))
    high = math.log10(buckets[-1]["lt_ms"])
    shapes = [*_y_axis(peak, plot_h, "calls")]
    for i, bucket in enumerate(buckets):
        h = bucket["count"] / peak * plot_h
        x = LEFT + i * bar_w
        shapes.append(
            f'<rect x="{x + 1:.1f}" y="{TOP + plot_h - h:.1f}" width="{max(bar_w - 2, 1):.1f}"'
            f' height="{h:.1f}" fill="{OK_COLOUR}"><title>{_ms(_lower_edge(bucket))}–{_ms(bucket["lt_ms"])}'
            f" ms: {int(bucket['count']):,} calls</title></rect>"
        )
        if i == 0 or _is_decade(bucket["ge_ms"]):
            shapes.append(_x_label(x, _ms(_lower_edge(bucket))))
    shapes.append(_x_label(LEFT + plot_w, _ms(buckets[-1]["lt_ms"])))
    shapes.append(_axis_title(LEFT + plot_w / 2, "latency, ms (log scale)"))
    for row, (key, label) in enumerate((("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99"))):
        ms = float(summary[key])
        if ms <= 0:
            continue
        x = LEFT + (math.log10(ms) - low) / (high - low) * plot_w
        # One row per mark, in ems so the rows stay apart when a phone enlarges the text; a white halo
        # keeps a label readable over a bar.
        dy = 1.0 + 1.2 * row
        shapes.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="{MARK_COLOUR}"'
            ' stroke-dasharray="4 3"/>'
            f'<text class="mark" x="{x + 3:.1f}" y="{TOP}" dy="{dy:.1f}em" style="fill:{MARK_COLOUR}">'
            f"{label} {_ms(ms)}</text>"
        )
    return _svg("latency histogram", shapes)


def timeline_svg(intervals: Sequence[Mapping[str, float]]) -> str:
    """Stacked bars per slice: ok/s, then failed/s on top."""
    if not intervals:
        return _empty_svg("no call finished")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    width_s = float(intervals[0]["width_s"])
    peak = max((i["ok"] + i["errors"]) / width_s for i in intervals) or 1.0
    bar_w = plot_w / len(intervals)
    shapes = [*_y_axis(peak, plot_h, "calls/s")]
    step = max(1, math.ceil(len(intervals) / 8))
    for n, interval in enumerate(intervals):
        x = LEFT + n * bar_w
        ok_h = interval["ok"] / width_s / peak * plot_h
        err_h = interval["errors"] / width_s / peak * plot_h
        start, ok_rate, error_rate = interval["t_s"], interval["ok"] / width_s, interval["errors"] / width_s
        tip = (
            f"<title>{start:g}–{start + width_s:g} s: {ok_rate:,.0f} ok/s, {error_rate:,.0f} failed/s</title>"
        )
        bar = f'<rect x="{x + 0.5:.1f}" width="{max(bar_w - 1, 1):.1f}"'
        shapes.append(
            f'{bar} y="{TOP + plot_h - ok_h:.1f}" height="{ok_h:.1f}" fill="{OK_COLOUR}">{tip}</rect>'
        )
        if err_h:
            top = TOP + plot_h - ok_h - err_h
            shapes.append(f'{bar} y="{top:.1f}" height="{err_h:.1f}" fill="{ERROR_COLOUR}">{tip}</rect>')
        if n % step == 0:
            shapes.append(_x_label(x, f"{interval['t_s']:g}"))
    shapes.append(_x_label(LEFT + plot_w, f"{intervals[-1]['t_s'] + width_s:g}"))
    shapes.append(_axis_title(LEFT + plot_w / 2, "seconds since the start"))
    return _svg("throughput over time", shapes)


def _y_axis(peak: float, plot_h: float, unit: str) -> Iterable[str]:
    yield (
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="{AXIS_COLOUR}"/>'
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}"'
        f' stroke="{AXIS_COLOUR}"/>'
    )
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h - fraction * plot_h
        yield f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{peak * fraction:,.0f}</text>'
    yield (
        f'<text x="12" y="{TOP + plot_h / 2:.1f}" text-anchor="middle"'
        f' transform="rotate(-90 12 {TOP + plot_h / 2:.1f})">{unit}</text>'
    )


def _x_label(x: float, text: str) -> str:
    return f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{escape(text)}</text>'


def _axis_title(x: float, text: str) -> str:
    return f'<text x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{escape(text)}</text>'


def _svg(label: str, shapes: Iterable[str]) -> str:
    return (
        f'<svg role="img" aria-label="{escape(label)}" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' width="{WIDTH}" height="{HEIGHT}">' + "".join(shapes) + "</svg>"
    )


def _empty_svg(text: str) -> str:
    return _svg(text, [f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">{escape(text)}</text>'])


def _lower_edge(bucket: Mapping[str, float]) -> float:
    # The first bucket may start at 0 ("and anything faster"); on a log axis it starts one step down.
    return bucket["ge_ms"] or bucket["lt_ms"] / 10 ** (1 / 5)


def _is_decade(ms: float) -> bool:
    return ms > 0 and abs(math.log10(ms) - round(math.log10(ms))) < 1e-6


def _ms(ms: float) -> str:
    return f"{ms:.3g}" if ms < 10 else f"{ms:,.0f}"
