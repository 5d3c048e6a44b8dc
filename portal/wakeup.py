"""Wake-ups for requests that wait on a state change (a terminal long-polling its payment), without polling.

`publish(topic)` is called inside the transaction that changes the state; waiters are woken once it commits, and
never for a change that rolled back:

- PostgreSQL: `pg_notify` inside the transaction. PostgreSQL delivers it at commit to every connection that
  LISTENs — every web process on every node, whichever process (web or Celery worker) made the change. Each web
  process has one listener thread holding one dedicated connection (started by the first wait); it wakes the
  process's waiters. After the listener (re)connects it wakes every waiter once, since notifications sent while it
  was away are lost.
- any other database (the embedded SQLite default): `transaction.on_commit` wakes the waiters of this process; a
  change committed by another process (the Celery worker) is seen at the waiters' periodic re-check
  (`WAKEUP_LOCAL_RECHECK_SECONDS`).

A wake-up is only a hint: the waiter re-reads the database before it answers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.db import connection, transaction

logger = logging.getLogger(__name__)

CHANNEL = "facepay_wakeup"
LISTENER_NAME = "facepay-wakeup"  # application_name of the LISTEN connection (pg_stat_activity)
_RECENT_SECONDS = 120.0  # how long a wake-up is remembered for a waiter that read the state just before it


def now() -> float:
    """The clock `wait`'s `since` is measured on."""
    return time.monotonic()


def topic_for(kind: str, pk: int) -> str:
    return f"{kind}:{pk}"


def _on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def publish(topic: str) -> None:
    """Wake whoever waits on `topic` when the current transaction commits."""
    if _on_postgresql():
        # Inside a transaction PostgreSQL holds the notification until COMMIT (and drops it on ROLLBACK); the same
        # topic notified twice in one transaction is delivered once.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, topic])
    else:
        transaction.on_commit(lambda: hub.wake(topic))


class Hub:
    """This process's waiters by topic. Thread-safe: wakes come from the listener thread or from whichever thread
    committed; each waiter is resolved on its own event loop."""

    def __init__(self, *, listens: bool = True) -> None:
        self._listens = listens  # PostgreSQL: start the LISTEN thread on the first wait (a hub of its own: False)
        self._lock = threading.Lock()
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}
        # topic → when it was last woken: a waiter that read the state at `since` and registers only afterwards
        # still learns of a change committed in between. Bounded by age.
        self._recent: OrderedDict[str, float] = OrderedDict()
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        self.listening = False  # PostgreSQL: the listener's connection is up
        self.generation = 0  # counts the listener's connections: a waiter that saw it change may have missed one

    def wake(self, topic: str) -> None:
        at = now()
        with self._lock:
            self._recent[topic] = at
            self._recent.move_to_end(topic)
            while self._recent and next(iter(self._recent.values())) < at - _RECENT_SECONDS:
                self._recent.popitem(last=False)
            waiters = self._waiters.pop(topic, [])
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    def wake_all(self) -> None:
        with self._lock:
            waiters = [waiter for topic_waiters in self._waiters.values() for waiter in topic_waiters]
            self._waiters.clear()
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    def waiting(self) -> int:
        with self._lock:
            return sum(len(waiters) for waiters in self._waiters.values())

    async def wait(self, topic: str, *, timeout: float, since: float) -> bool:
        """True once `topic` is woken after `since` (at once if that already happened), False after `timeout`."""
        self._ensure_listener()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        entry = (loop, future)
        with self._lock:
            if self._recent.get(topic, float("-inf")) >= since:
                return True
            self._waiters.setdefault(topic, []).append(entry)
        try:
            await asyncio.wait_for(future, timeout=max(0.0, timeout))
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                waiters = self._waiters.get(topic)
                if waiters and entry in waiters:
                    waiters.remove(entry)
                    if not waiters:
                        del self._waiters[topic]

    def recheck_seconds(self) -> float | None:
        """How often a waiter re-reads the database without being woken: never while PostgreSQL's listener is up
        (a commit always notifies it), otherwise every WAKEUP_LOCAL_RECHECK_SECONDS."""
        if _on_postgresql() and self.listening:
            return None
        return settings.WAKEUP_LOCAL_RECHECK_SECONDS

    # --- PostgreSQL listener ----------------------------------------------------------------------------------

    def _ensure_listener(self) -> None:
        if self._listener is not None or not self._listens or not _on_postgresql():
            return
        with self._lock:
            if self._listener is None:
                params = connection.get_connection_params()
                self._stop.clear()
                self._listener = threading.Thread(target=self._listen, args=(params,), name="wakeup", daemon=True)
                self._listener.start()

    def stop_listener(self) -> None:
        """Close the listener's connection (the test suite does, before it drops its database)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            self._stop.set()
            listener.join(timeout=5)

    def _listen(self, params: dict) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(**{**params, "application_name": LISTENER_NAME}, autocommit=True) as listener:
                    listener.execute(f"LISTEN {CHANNEL}")
                    self.generation += 1
                    self.listening = True
                    self.wake_all()  # anything committed while nobody listened: let every waiter re-read
                    quiet_since = now()
                    while not self._stop.is_set():
                        for notify in listener.notifies(timeout=1.0):
                            self.wake(notify.payload)
                            quiet_since = now()
                        if now() - quiet_since > 30:
                            listener.execute("SELECT 1")  # a quiet half-minute: is the connection still there?
                            quiet_since = now()
            except Exception as exc:
                logger.warning("wake-up listener lost its connection (%s); reconnecting", type(exc).__name__)
            finally:
                was_listening, self.listening = self.listening, False
                if was_listening:
                    # Silence no longer means "nothing changed": every waiter re-reads now (a database that went
                    # down answers it 503 at once) and then every WAKEUP_LOCAL_RECHECK_SECONDS until reconnected.
                    self.wake_all()
            self._stop.wait(1.0)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


hub = Hub()
