"""`orderpay purge --older-than 3d [--dry-run]`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    purge = sub.add_parser("purge", help="delete never-paid closed orders older than a cutoff")
    purge.add_argument(
        "--older-than", required=True, metavar="AGE", help="e.g. 3d, 12h, 30m (closed before now - AGE)"
    )
    purge.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    purge.set_defaults(func=_purge)


def _purge(args: argparse.Namespace) -> int:
    from server.jobs.purge import parse_duration  # noqa: PLC0415 - keep `orderpay --help` light

    try:
        age = parse_duration(args.older_than)
    except ValueError as exc:
        print(f"purge: {exc}")
        return 2
    from server.bootstrap import build_app  # noqa: PLC0415
    from server.config import load_settings  # noqa: PLC0415
    from server.jobs.purge import purge_closed_unpaid  # noqa: PLC0415

    # The composition root's unit of work: whatever a purge records gets its reactions like any write.
    app = build_app(load_settings(), run_migrations=False, payments_required=False)
    try:
        cutoff = app.clock() - age
        report = purge_closed_unpaid(app.uow, cutoff, dry_run=args.dry_run)
        feed = app.feed.purge(dry_run=args.dry_run)  # ORDERPAY_FEED_RETENTION_DAYS, never unacknowledged
    finally:
        app.close()
    verb = "would delete" if args.dry_run else "deleted"
    closed_before = f"{cutoff:%Y-%m-%dT%H:%M:%SZ}"
    print(
        f"purge: {verb} {report.orders} orders and {report.events} order events closed before {closed_before}"
    )
    print(
        f"purge: {verb} {feed} event-feed entries older than {app.settings.feed_retention_days:g} days "
        "that every registered subscriber acknowledged"
    )
    return 0
