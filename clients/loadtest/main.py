"""The `orderpay loadtest` handler: flags → LoadConfig, run the scenario, check, print, exit code."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import peewee as pw
from rich.console import Console
from rich.markup import escape

from clients.console import print_json, stdout_console
from clients.loadtest import bounds
from clients.loadtest.defaults import (
    DEFAULT_DATABASE_URL,
    DEFAULT_DUPLICATES,
    DEFAULT_NOTIFY_URL,
    DEFAULT_TARGET,
    DEV_BFF_TOKEN,
)
from clients.loadtest.harness import Plan
from clients.loadtest.html_report import render_report
from clients.loadtest.invariants import (
    DatabaseUnusableError,
    InvariantReport,
    check_invariants,
    confirm_server_database,
    probe,
)
from clients.loadtest.preflight import require_serving
from clients.loadtest.provenance import provenance
from clients.loadtest.report import errors_table, invariants_table, progress_bar, summary_view
from clients.loadtest.scenarios import LoadConfig, ScenarioResult, SetupError, run_scenario
from clients.loadtest.verdict import run_failures

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


def run_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    errors = Console(stderr=True)
    try:
        config = config_from_args(args, env)
        max_error_rate = bounds.percent(args.max_error_rate, "max-error-rate")
        database_url = bounds.require_loopback_url(
            args.database_url or env.get("ORDERPAY_DATABASE_URL") or DEFAULT_DATABASE_URL, "database"
        )
        _check_report_path(args.report)
        if not args.no_check:  # before the load, not after it: a run whose check cannot read is wasted
            probe(database_url)
        require_serving(config.targets)  # one health call, not a minute of refused connections
    except DatabaseUnusableError as exc:
        message = f"[bold red]error:[/] cannot check the invariants: {escape(str(exc))}"
        errors.print(message, highlight=False, soft_wrap=True)  # one line, whatever the width
        return EXIT_UNUSABLE
    except ValueError as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_UNUSABLE
    try:
        result = _run(args.scenario, config, show_progress=not args.json, console=errors)
        if not args.no_check:
            confirm_server_database(database_url, result.expected, result.summary.ok)
        report = None if args.no_check else check_invariants(database_url, result.expected)
    except DatabaseUnusableError as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_UNUSABLE
    except (SetupError, pw.OperationalError, OSError) as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False)
        return EXIT_UNUSABLE
    failures = [*run_failures(result.summary, max_error_rate), *result.problems]
    document = result_json(config, result, report, failures)
    _print(args, config, result, report, failures, document)
    if args.report is not None:
        args.report.write_text(render_report(document), encoding="utf-8")
        if not args.json:
            errors.print(f"report: {escape(str(args.report))}", highlight=False, soft_wrap=True)
    healthy = not failures and (report is None or report.ok)
    return EXIT_OK if healthy else EXIT_FAILED


def _check_report_path(path: Path | None) -> None:
    if path is not None and not path.resolve().parent.is_dir():
        raise ValueError(f"--report: directory {path.resolve().parent} does not exist")


def config_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> LoadConfig:
    """Validated settings: loopback endpoints only, every size within the caps of `bounds`."""
    targets = tuple(
        bounds.require_loopback_target(target.strip())
        for target in (args.target or env.get("ORDERPAY_GRPC_TARGET") or DEFAULT_TARGET).split(",")
        if target.strip()
    )
    duplicates = args.duplicates if args.duplicates is not None else DEFAULT_DUPLICATES.get(args.scenario, 1)
    plan = Plan(
        count=bounds.clamp(args.count, 1, bounds.MAX_COUNT, "count"),
        concurrency=bounds.clamp(args.concurrency, 1, bounds.MAX_CONCURRENCY, "concurrency"),
        duration_s=bounds.clamp_duration(args.duration),
    )
    return LoadConfig(
        targets=targets,
        token=args.token or env.get("ORDERPAY_TOKEN") or DEV_BFF_TOKEN,
        plan=plan,
        product_id=args.product,
        duplicates=bounds.clamp(duplicates, 1, bounds.MAX_DUPLICATES, "duplicates"),
        sandbox_url=bounds.require_loopback_url(args.sandbox_url, "sandbox url"),
        notify_url=bounds.require_loopback_url(
            args.notify_url or env.get("ORDERPAY_NOTIFY_URL") or DEFAULT_NOTIFY_URL, "notify url"
        ),
        credentials_dir=Path(args.credentials_dir or env.get("ORDERPAY_CREDENTIALS_DIR") or ".orderpay/keys"),
        auto_pay_delay_s=args.auto_pay_delay,
        fulfil_timeout_s=args.fulfil_timeout,
    )


def _run(scenario: str, config: LoadConfig, *, show_progress: bool, console: Console) -> ScenarioResult:
    if not show_progress:
        return asyncio.run(run_scenario(scenario, config))
    with progress_bar(console, scenario, config.plan.count) as hook:
        return asyncio.run(run_scenario(scenario, config, hook))


def result_json(
    config: LoadConfig, result: ScenarioResult, report: InvariantReport | None, failures: list[str]
) -> dict[str, Any]:
    return {
        "scenario": result.summary.name,
        "run_id": config.run_id,
        "targets": list(config.targets),
        "concurrency": config.plan.concurrency,
        "duplicates": config.duplicates,
        "summary": result.summary.to_json(),
        "problems": result.problems,
        "failures": failures,
        "invariants": None if report is None else report.to_json(),
        "ok": not failures and (report is None or report.ok),
        "provenance": provenance(),
    }


def _print(
    args: argparse.Namespace,
    config: LoadConfig,
    result: ScenarioResult,
    report: InvariantReport | None,
    failures: list[str],
    document: dict[str, Any],
) -> None:
    if args.json:
        print_json(document)
        return
    console = stdout_console()
    console.print(summary_view(result.summary, console))
    if result.summary.errors:
        console.print(errors_table(result.summary))
    if result.summary.extra:
        console.print("details: " + ", ".join(f"{k}={v}" for k, v in result.summary.extra.items()))
    if report is not None:
        console.print(invariants_table(report))
        verdict = "[green]all invariants hold[/]" if report.ok else "[bold red]invariants FAILED[/]"
        console.print(verdict + f" (run {config.run_id})")
    for failure in failures:  # last, where the eye lands: why the exit code is 1
        console.print(f"[bold red]FAILED:[/] {escape(failure)}", highlight=False)
