"""`orderpay loadtest --report` opened in headless Chromium, offline: both charts draw, nothing is
fetched, and the page fits a desktop (1280 px) and a phone (390 px); screenshots in .artifacts/loadtest/."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Request

from clients.loadtest.distribution import histogram, timeline
from clients.loadtest.harness import Summary, percentile
from clients.loadtest.html_report import render_report

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "loadtest"


def _run_document() -> dict[str, object]:
    """A run as `loadtest --json` prints it: 2,000 calls over 4 s, a burst of failures in the middle."""
    rng = random.Random(7)
    latencies = sorted(rng.lognormvariate(-4.6, 0.5) for _ in range(2000))
    ok_at = [rng.uniform(0, 4) for _ in range(2000)]
    failed_at = [rng.uniform(1.5, 2.0) for _ in range(60)]
    p50, p95, p99 = (round(percentile(latencies, f) * 1000, 2) for f in (0.5, 0.95, 0.99))
    summary = Summary(
        "create-unique", 2060, 2060, 2000, {"UNAVAILABLE": 60}, 4.0, 500.0, p50, p95, p99,
        round(latencies[-1] * 1000, 2),
        latency_histogram=histogram(latencies), timeline=timeline(ok_at, failed_at, 4.0),
        extra={"first_answers": 1000, "replayed_answers": 19000, "split_keys": 0},
    )  # fmt: skip
    return {
        "scenario": "create-unique", "run_id": "0123456789", "targets": ["127.0.0.1:50051"],
        "concurrency": 64, "duplicates": 1, "summary": summary.to_json(), "problems": [],
        "failures": ["60 of 2060 calls failed (2.9% > 1% allowed by --max-error-rate; UNAVAILABLE 60)"],
        "invariants": {"ok": True, "results": [
            {"name": "one_order_per_key", "says": "one order per (user_id, request_id)", "ok": True,
             "violations": 0, "examples": []},
        ]},
        "ok": False,
        "provenance": {"version": "0.1.0", "commit": "3739e79abcde", "host": "box-1", "cores": 2,
                       "python": "3.11.7", "started_at": "2026-12-07T19:00:00+00:00"},
    }  # fmt: skip


@pytest.mark.parametrize(("name", "width"), [("desktop", 1280), ("phone", 390)])
def test_the_report_draws_offline_and_fits(browser: Browser, tmp_path: Path, name: str, width: int) -> None:
    report = tmp_path / "run.html"
    report.write_text(render_report(_run_document()), encoding="utf-8")
    page = browser.new_page(viewport={"width": width, "height": 900})
    requests: list[str] = []

    def note(request: Request) -> None:
        requests.append(request.url)

    page.on("request", note)
    try:
        page.goto(report.as_uri())
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"report-{name}.png"), full_page=True)
        charts = page.locator("svg")
        assert charts.count() == 2
        for index in range(2):
            box = charts.nth(index).bounding_box() or {"width": 0, "height": 0}
            assert 300 <= box["width"] <= width
            assert box["height"] > 100
        assert page.locator("svg rect").count() > 20
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        page.close()
    assert requests == [report.as_uri()]  # the page itself, and nothing else


@pytest.mark.parametrize(("name", "width"), [("desktop", 1280), ("phone", 390)])
def test_the_report_shows_the_scenario_figures_provenance_and_readable_axes(
    browser: Browser, tmp_path: Path, name: str, width: int
) -> None:
    report = tmp_path / "run.html"
    report.write_text(render_report(_run_document()), encoding="utf-8")
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(report.as_uri())
        figures = page.locator(".figures.scenario").inner_text()
        for label, value in (("first answers", "1,000"), ("replayed answers", "19,000"), ("split keys", "0")):
            assert label in figures
            assert value in figures
        provenance = page.locator(".provenance").inner_text()
        assert "3739e79abcde" in provenance
        assert "box-1 (2 cores, Python 3.11.7)" in provenance
        smallest = page.evaluate(
            "Math.min(...[...document.querySelectorAll('svg text')]"
            ".map(t => t.getBoundingClientRect().height))"
        )
        assert smallest >= 9, f"axis text drawn {smallest:.1f} px tall at {width} px"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"report-figures-{name}.png"), full_page=True)
    finally:
        page.close()
