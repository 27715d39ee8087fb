"""`orderpay loadtest` end to end: a real `orderpay serve` on a temp SQLite file, the CLI as a process."""

from __future__ import annotations

import itertools
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from clients.bench.procs import BFF_TOKEN, free_port
from clients.bench.stack import ServerSpec, init_keys, start_server
from tests.support.stack import ROOT
from tests.support.terminal import run_in_terminal

CLI_TIMEOUT_S = 60


@dataclass(frozen=True)
class Stack:
    target: str
    database_url: str
    database_path: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("loadtest")
    database = workdir / "orderpay.db"
    # `serve` needs a credentials bundle; WeChat Pay is unreachable, which order-only scenarios never touch.
    spec = ServerSpec(f"sqlite:///{database}", init_keys(workdir / "keys"))
    server = start_server(workdir, spec)
    try:
        yield Stack(server.endpoints["target"], f"sqlite:///{database}", database)
    finally:
        server.stop()


def _loadtest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", "loadtest", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def _run_json(stack: Stack, *args: str, database_url: str | None = None) -> tuple[int, dict[str, Any]]:
    target = [] if "--target" in args else ["--target", stack.target]
    done = _loadtest(
        *args, "--json", *target, "--token", BFF_TOKEN,
        "--database-url", database_url or stack.database_url,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def test_create_unique_reports_figures_and_clean_invariants(stack: Stack) -> None:
    code, result = _run_json(stack, "create-unique", "--count", "50", "--concurrency", "8")

    assert code == 0, result
    summary = result["summary"]
    assert (summary["items"], summary["calls"], summary["ok"], summary["errors"]) == (50, 50, 50, {})
    assert summary["throughput"] > 0
    assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    checks = {check["name"]: check for check in result["invariants"]["results"]}
    assert result["ok"]
    assert result["invariants"]["ok"]
    assert checks["run_orders"]["ok"]
    assert checks["one_order_per_key"]["ok"]


def test_duplicate_storm_gets_one_order_per_key(stack: Stack) -> None:
    code, result = _run_json(
        stack, "duplicate-storm", "--count", "10", "--duplicates", "5", "--concurrency", "10"
    )

    assert code == 0, result
    extra = result["summary"]["extra"]
    assert result["summary"]["calls"] == 50
    assert (extra["first_answers"], extra["replayed_answers"], extra["split_keys"]) == (10, 40, 0)


def test_broken_database_makes_the_run_fail(stack: Stack) -> None:
    # The server's own database, broken behind its back (a negative stock), then put back.
    with sqlite3.connect(stack.database_path) as conn:
        (stock,) = conn.execute("SELECT stock FROM products WHERE product_id = 'mug-limited'").fetchone()
        conn.execute("PRAGMA ignore_check_constraints = ON")  # what the schema forbids, done anyway
        conn.execute("UPDATE products SET stock = -3 WHERE product_id = 'mug-limited'")
    try:
        code, result = _run_json(stack, "create-unique", "--count", "5")
    finally:
        with sqlite3.connect(stack.database_path) as conn:
            conn.execute("UPDATE products SET stock = ? WHERE product_id = 'mug-limited'", (stock,))

    assert code == 1
    failed = [check["name"] for check in result["invariants"]["results"] if not check["ok"]]
    assert "stock_never_negative" in failed
    assert not result["ok"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "10.1.2.3:50051"], "non-loopback target"),
        (
            ["--target", "127.0.0.1:1", "--database-url", "postgresql://postgres@db.example.com/x"],
            "non-loopback",
        ),
        (["--target", "127.0.0.1:1", "--count", "1000000"], "--count must be between"),
        (["--target", "127.0.0.1:1", "--concurrency", "0"], "--concurrency must be between"),
    ],
)
def test_refuses_remote_or_unbounded_runs(args: list[str], message: str) -> None:
    done = _loadtest("create-unique", *args)

    assert done.returncode == 2
    assert message in done.stderr


def test_notify_fuzz_drill_accepts_nothing(tmp_path: Path) -> None:
    keys = init_keys(tmp_path / "keys")
    database = tmp_path / "fuzz.db"
    server = start_server(tmp_path, ServerSpec(f"sqlite:///{database}", keys), need_sidecar=True)
    try:
        done = _loadtest(
            "notify-fuzz", "--json", "--count", "400", "--concurrency", "16",
            "--target", server.endpoints["target"], "--token", BFF_TOKEN,
            "--notify-url", server.endpoints["notify_url"], "--credentials-dir", str(keys),
            "--database-url", f"sqlite:///{database}",
        )  # fmt: skip
    finally:
        server.stop()
    result = json.loads(done.stdout)
    assert done.returncode == 0, result
    answers = result["summary"]["extra"]["answers"]
    assert sum(answers.values()) == 400
    assert all(400 <= int(key.rsplit(":", 1)[1]) < 500 for key in answers)
    kinds = {key.split(":")[0] for key in answers}
    assert {"signtest_probe", "replayed_stale", "body_byte_flipped", "garbage"} <= kinds
    checks = {check["name"]: check for check in result["invariants"]["results"]}
    assert checks["run_paid"]["ok"]  # not one of the 50 orders got paid


def test_a_dead_target_is_refused_in_one_line_before_any_load(stack: Stack) -> None:
    dead = f"127.0.0.1:{free_port()}"

    done = _loadtest(
        "create-unique", "--count", "10", "--concurrency", "4", "--target", dead,
        "--database-url", stack.database_url,
    )  # fmt: skip

    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: nothing answers at {dead} (UNAVAILABLE): is `make run` up?"), line
    assert done.stdout == ""  # no progress bar, no figures: not one call of load was sent


def test_a_database_the_server_does_not_write_is_not_judged(stack: Stack, tmp_path: Path) -> None:
    other = tmp_path / "other.db"  # migrated, empty: what a refused `serve` used to leave behind
    subprocess.run(
        [sys.executable, "-m", "clients.cli", "migrate"],
        env={**os.environ, "ORDERPAY_DATABASE_URL": f"sqlite:///{other}"},
        cwd=ROOT, check=True, capture_output=True, timeout=CLI_TIMEOUT_S,
    )  # fmt: skip

    done = _loadtest(
        "create-unique", "--count", "5", "--target", stack.target, "--token", BFF_TOKEN,
        "--database-url", f"sqlite:///{other}",
    )  # fmt: skip

    assert done.returncode == 2, done.stdout + done.stderr
    assert "invariants FAILED" not in done.stdout
    assert "none of this run's orders are in" in done.stderr
    assert "not the database the server writes to" in done.stderr


def test_the_progress_line_shows_rate_errors_and_eta(stack: Stack) -> None:
    half_dead = f"{stack.target},127.0.0.1:{free_port()}"  # every other call fails: errors to count
    code, screen = run_in_terminal(
        [sys.executable, "-m", "clients.cli", "loadtest", "create-unique", "--count", "40",
         "--concurrency", "2", "--target", half_dead, "--token", BFF_TOKEN,
         "--database-url", stack.database_url, "--max-error-rate", "100"],
        columns=120, timeout_s=CLI_TIMEOUT_S,
    )  # fmt: skip

    assert code == 0, screen
    bar = next(line for line in screen.splitlines() if line.startswith("create-unique") and "40/40" in line)
    assert re.search(r"\d+ ok/s", bar), bar
    assert re.search(r"[1-9]\d* errors", bar), bar
    assert "ETA" in bar, bar


def test_failures_beyond_the_stated_rate_fail_the_run(stack: Stack) -> None:
    half_dead = f"{stack.target},127.0.0.1:{free_port()}"  # round-robin: every other call fails

    code, result = _run_json(
        stack, "create-unique", "--count", "20", "--concurrency", "4", "--target", half_dead
    )
    assert code == 1
    assert result["failures"] == [
        "10 of 20 calls failed (50.0% > 1% allowed by --max-error-rate; UNAVAILABLE 10)"
    ]
    assert not result["ok"]

    code, result = _run_json(
        stack, "create-unique", "--count", "20", "--concurrency", "4", "--target", half_dead,
        "--max-error-rate", "60",
    )  # fmt: skip
    assert code == 0, result
    assert result["failures"] == []
    assert result["summary"]["ok"] == 10


def test_tables_are_complete_when_piped(stack: Stack) -> None:
    done = _loadtest(
        "create-unique", "--count", "5", "--target", stack.target, "--token", BFF_TOKEN,
        "--database-url", stack.database_url,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert "…" not in done.stdout
    header = next(line for line in done.stdout.splitlines() if "elapsed s" in line)
    for column in ("items", "calls", "ok/s", "p50 ms", "p99 ms", "max ms"):
        assert column in header
    checks = [line for line in done.stdout.splitlines() if "one_order_per_key" in line]
    assert len(checks) == 1  # the rule is on the check's own line, whole
    assert "all invariants hold" in done.stdout


def test_tables_fit_an_80_column_terminal(stack: Stack) -> None:
    argv = [sys.executable, "-m", "clients.cli", "loadtest", "create-unique", "--count", "5"]
    argv += ["--target", stack.target, "--token", BFF_TOKEN, "--database-url", stack.database_url]

    code, screen = run_in_terminal(argv, columns=80)

    assert code == 0, screen
    assert "…" not in screen
    assert max(len(line) for line in screen.splitlines()) <= 80
    for figure in ("elapsed s", "ok/s", "p50 ms", "p99 ms", "max ms", "one_order_per_key"):
        assert figure in screen


def test_outside_the_repository_the_check_is_refused_before_any_load(stack: Stack, tmp_path: Path) -> None:
    # The default database URL is relative: from another directory it names a file that is not there.
    orders_before = _load_orders(stack)
    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", "loadtest", "create-unique", "--count", "5",
         "--target", stack.target, "--token", BFF_TOKEN],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip

    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()  # one line: what, where, and how to point at it
    missing = tmp_path.resolve() / ".orderpay" / "orderpay.db"
    assert line.startswith(f"error: cannot check the invariants: no database file at {missing}")
    assert "--database-url" in line
    assert "ORDERPAY_DATABASE_URL" in line
    assert "--no-check" in line
    assert done.stdout == ""  # no progress bar, no table: the load never started
    assert _load_orders(stack) == orders_before


def test_a_database_without_the_schema_is_refused_before_any_load(stack: Stack, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()

    done = _loadtest("create-unique", "--count", "5", "--target", stack.target, "--database-url",
                     f"sqlite:///{empty}")  # fmt: skip

    assert done.returncode == 2
    assert "no such table: orders" in done.stderr
    assert "--database-url" in done.stderr


def _load_orders(stack: Stack) -> int:
    with sqlite3.connect(stack.database_path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM orders WHERE user_id LIKE 'lt-%'").fetchone()[0])


def test_json_carries_the_latency_histogram_and_the_timeline(stack: Stack) -> None:
    code, result = _run_json(stack, "create-unique", "--count", "40", "--concurrency", "4")

    assert code == 0, result
    summary = result["summary"]
    buckets = summary["latency_histogram"]
    assert sum(bucket["count"] for bucket in buckets) == summary["ok"] == 40
    assert all(bucket["ge_ms"] < bucket["lt_ms"] for bucket in buckets)
    assert all(a["lt_ms"] == b["ge_ms"] for a, b in itertools.pairwise(buckets))  # contiguous
    holding_max = next(b for b in buckets if b["ge_ms"] <= summary["max_ms"] < b["lt_ms"])
    assert holding_max is buckets[-1]
    timeline = summary["timeline"]
    assert sum(interval["ok"] for interval in timeline) == 40
    assert sum(interval["errors"] for interval in timeline) == 0
    assert timeline[-1]["t_s"] < summary["elapsed_s"] <= timeline[-1]["t_s"] + timeline[-1]["width_s"] + 1e-6


def test_report_is_one_self_contained_html_file(stack: Stack, tmp_path: Path) -> None:
    half_dead = f"{stack.target},127.0.0.1:{free_port()}"  # failures too, so the red bars show
    report = tmp_path / "run.html"

    done = _loadtest(
        "create-unique", "--count", "30", "--concurrency", "4", "--target", half_dead, "--token", BFF_TOKEN,
        "--database-url", stack.database_url, "--report", str(report), "--max-error-rate", "60",
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"report: {report}" in done.stderr
    page = report.read_text(encoding="utf-8")
    parsed = _Page()
    parsed.feed(page)
    assert parsed.svgs == ["latency histogram", "throughput over time"]
    assert parsed.fetches == []  # no script, stylesheet, image or font from anywhere
    assert "http://" not in page
    assert "https://" not in page
    assert parsed.bars["#07c160"] > 0  # ok bars in both charts
    assert parsed.bars["#d93025"] > 0  # failed calls, stacked in red
    for text in ("p50", "p95", "p99", "UNAVAILABLE", "one_order_per_key", "create-unique"):
        assert text in page


def test_report_to_a_missing_directory_is_refused_before_the_load(stack: Stack, tmp_path: Path) -> None:
    done = _loadtest(
        "create-unique", "--count", "5", "--target", stack.target, "--database-url", stack.database_url,
        "--report", str(tmp_path / "nope" / "run.html"),
    )  # fmt: skip

    assert done.returncode == 2
    assert "--report: directory" in done.stderr
    assert done.stdout == ""


class _Page(HTMLParser):
    """What a browser would fetch for this page, its SVG charts, and its bars by colour."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[str] = []
        self.fetches: list[str] = []
        self.bars: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "svg":
            self.svgs.append(values.get("aria-label") or "")
        if tag == "rect":
            self.bars[values.get("fill") or ""] += 1
        if tag in {"script", "img", "link", "iframe", "object", "embed", "source", "image", "use"}:
            self.fetches.append(tag)
        self.fetches += [f"{tag}[{name}]" for name in ("src", "href", "xlink:href") if values.get(name)]
