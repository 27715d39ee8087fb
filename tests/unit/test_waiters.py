"""The waiters registry on a real event loop: woken, timed out, cancelled, closed."""

from __future__ import annotations

import asyncio
import threading

from server.serving.waiters import Waiters


class Box:
    """A stand-in for the order row: the value a waiter reads, changed by the 'commit'."""

    def __init__(self) -> None:
        self.value = "PENDING"
        self.reads = 0

    async def read(self) -> str:
        self.reads += 1
        return self.value


def decided(value: str) -> bool:
    return value != "PENDING"


async def parked(waiters: Waiters, count: int = 1) -> None:
    """One loop turn: every task created so far runs up to its first suspension, i.e. its park."""
    await asyncio.sleep(0)
    assert len(waiters) == waiters.waiting == count


async def test_a_wake_after_the_commit_returns_the_decided_value() -> None:
    waiters, box = Waiters(asyncio.get_running_loop()), Box()
    waiting = asyncio.create_task(waiters.until("o1", box.read, decided, 60))
    await parked(waiters)
    box.value = "SUCCEEDED"
    waiters.wake("o1")
    assert await waiting == "SUCCEEDED"
    assert len(waiters) == 0
    assert waiters.answers == {"signal": 1}  # answered by the wake, not by its deadline


async def test_a_spurious_wake_parks_again_and_the_timeout_answers_the_current_value() -> None:
    waiters, box = Waiters(asyncio.get_running_loop()), Box()
    waiting = asyncio.create_task(waiters.until("o2", box.read, decided, 0.05))
    await parked(waiters)
    waiters.wake("o2")  # nothing was decided: the waiter re-reads and parks again
    assert await waiting == "PENDING"
    assert box.reads >= 3  # first read, after the wake, at the timeout
    assert len(waiters) == 0
    assert waiters.answers == {"timeout": 1}


async def test_an_already_decided_order_does_not_park() -> None:
    waiters, box = Waiters(asyncio.get_running_loop()), Box()
    box.value = "FAILED"
    assert await waiters.until("o3", box.read, decided, 60) == "FAILED"
    assert len(waiters) == 0
    assert waiters.answers == {"at_once": 1}


async def test_a_cancelled_wait_releases_its_entry() -> None:
    waiters, box = Waiters(asyncio.get_running_loop()), Box()
    waiting = [asyncio.create_task(waiters.until("o4", box.read, decided, 60)) for _ in range(3)]
    await parked(waiters, 3)
    waiting[0].cancel()
    await asyncio.gather(waiting[0], return_exceptions=True)
    assert len(waiters) == 2
    for task in waiting[1:]:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert len(waiters) == 0


async def test_a_wake_from_another_thread_reaches_the_loop() -> None:
    waiters, box = Waiters(asyncio.get_running_loop()), Box()
    waiting = asyncio.create_task(waiters.until("o5", box.read, decided, 60))
    await parked(waiters)

    def commit_elsewhere() -> None:
        box.value = "SUCCEEDED"
        waiters.wake("o5")

    thread = threading.Thread(target=commit_elsewhere)
    thread.start()
    assert await waiting == "SUCCEEDED"
    thread.join()


async def test_close_answers_every_waiter_with_its_current_value_and_stops_parking() -> None:
    waiters, box = Waiters(asyncio.get_running_loop()), Box()
    waiting = [asyncio.create_task(waiters.until(f"o6-{i}", box.read, decided, 60)) for i in range(5)]
    await parked(waiters, 5)
    waiters.close()
    assert await asyncio.gather(*waiting) == ["PENDING"] * 5
    assert await waiters.until("o6-late", box.read, decided, 60) == "PENDING"
    assert len(waiters) == 0
