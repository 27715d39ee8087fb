"""The notifications repository on a real database: insert-first, terminal PROCESSED, claims that race."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from server.adapters.notification_store import signed_headers_only
from server.app import App
from server.domain.notification import NotificationStatus
from tests.notify.rows import NotificationRows

HEADERS = {"Wechatpay-Serial": "S", "Wechatpay-Signature": "sig", "Host": "x", "User-Agent": "ua"}


def test_only_wechatpay_headers_are_kept() -> None:
    assert signed_headers_only(HEADERS) == {"Wechatpay-Serial": "S", "Wechatpay-Signature": "sig"}


def test_second_store_reports_the_first_rows_status(
    store: NotificationRows, notify_app: App, rid: str
) -> None:
    now = notify_app.clock()
    first = store.store(f"N{rid}", "TRANSACTION.SUCCESS", HEADERS, "{}", now)
    assert (first.created, first.status) == (True, NotificationStatus.RECEIVED)
    store.mark_processed(f"N{rid}", "applied", now)
    again = store.store(f"N{rid}", "TRANSACTION.SUCCESS", HEADERS, "{}", now)
    assert (again.created, again.status, again.outcome) == (False, NotificationStatus.PROCESSED, "applied")


def test_processed_is_terminal(store: NotificationRows, notify_app: App, rid: str) -> None:
    now = notify_app.clock()
    store.store(f"N{rid}", "TRANSACTION.SUCCESS", HEADERS, "{}", now)
    store.mark_processed(f"N{rid}", "applied", now)
    store.mark_failed(f"N{rid}", "error", now)
    store.mark_processed(f"N{rid}", "duplicate", now)
    row = store.get(f"N{rid}")
    assert row is not None
    assert (row.status, row.outcome, row.attempts) == (NotificationStatus.PROCESSED, "applied", 1)


def test_due_rows_are_claimed_by_exactly_one_of_two_racing_stores(notify_app: App, rid: str) -> None:
    first, second = (NotificationRows(notify_app.db, notify_app.uow) for _ in range(2))
    received = notify_app.clock() - timedelta(hours=1)
    ids = [f"N{rid}-{i}" for i in range(20)]
    for notification_id in ids:
        first.store(notification_id, "TRANSACTION.SUCCESS", HEADERS, "{}", received)
    first.mark_failed(ids[0], "error", received)
    later = notify_app.clock()

    def claim(store: NotificationRows) -> set[str]:
        return {
            row.notification_id for row in store.claim_due(later, 60, 10_000) if row.notification_id in ids
        }

    with ThreadPoolExecutor(max_workers=2) as pool:
        won = list(pool.map(claim, [first, second]))
    assert won[0].isdisjoint(won[1])
    assert won[0] | won[1] == set(ids)  # FAILED rows are due too
    assert not claim(first)  # a claimed row is not due again until `older_than_s` has passed


def test_rows_past_the_attempt_cap_are_left_alone(store: NotificationRows, notify_app: App, rid: str) -> None:
    received = notify_app.clock() - timedelta(hours=1)
    store.store(f"N{rid}", "TRANSACTION.SUCCESS", HEADERS, "{}", received)
    store.mark_failed(f"N{rid}", "error", received)
    later = notify_app.clock()
    due = store.claim_due(later, 0, 10_000, max_attempts=1)
    assert f"N{rid}" not in {row.notification_id for row in due}
    row = store.get(f"N{rid}")
    assert row is not None
    assert row.status == NotificationStatus.FAILED


def test_ping_answers_true_for_a_live_database(store: NotificationRows) -> None:
    assert store.ping()
