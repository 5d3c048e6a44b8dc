"""The wake-up hub on its own: waiters by topic, across threads and event loops, and the race it closes."""

import asyncio
import threading
import time

from portal.wakeup import Hub


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_waiter_is_woken_by_its_topic_from_another_thread():
    hub = Hub(listens=False)

    async def scenario():
        since = time.monotonic()
        threading.Timer(0.05, hub.wake, args=["payment:1"]).start()
        started = time.monotonic()
        woken = await hub.wait("payment:1", timeout=5, since=since)
        return woken, time.monotonic() - started

    woken, waited = run(scenario())
    assert woken is True
    assert waited < 1
    assert hub.waiting() == 0


def test_another_topic_does_not_wake_it_and_the_timeout_ends_the_wait():
    hub = Hub(listens=False)

    async def scenario():
        since = time.monotonic()
        threading.Timer(0.02, hub.wake, args=["payment:2"]).start()
        return await hub.wait("payment:1", timeout=0.3, since=since)

    assert run(scenario()) is False
    assert hub.waiting() == 0  # the timed-out waiter does not stay registered


def test_a_wake_between_the_read_and_the_registration_is_not_missed():
    """The view reads the state at `since`, then registers: a change committed in between wakes it at once."""
    hub = Hub(listens=False)
    since = time.monotonic()
    hub.wake("payment:1")  # committed after the read, before the wait

    async def scenario():
        started = time.monotonic()
        return await hub.wait("payment:1", timeout=5, since=since), time.monotonic() - started

    woken, waited = run(scenario())
    assert woken is True and waited < 0.05


def test_a_wake_before_the_read_does_not_count():
    hub = Hub(listens=False)
    hub.wake("payment:1")
    since = time.monotonic()

    async def scenario():
        return await hub.wait("payment:1", timeout=0.2, since=since)

    assert run(scenario()) is False


def test_every_waiter_of_a_topic_is_woken_and_wake_all_reaches_all_topics():
    hub = Hub(listens=False)

    async def scenario():
        since = time.monotonic()
        waits = [asyncio.create_task(hub.wait(f"payment:{n % 3}", timeout=5, since=since)) for n in range(30)]
        await asyncio.sleep(0.05)
        assert hub.waiting() == 30
        hub.wake("payment:0")
        await asyncio.sleep(0.05)
        assert hub.waiting() == 20
        hub.wake_all()
        return await asyncio.gather(*waits)

    assert run(scenario()) == [True] * 30
