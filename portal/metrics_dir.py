"""The directory through which the processes of one node share their metrics (prometheus-client's multiprocess mode).

Each process — web worker, gunicorn's master, Celery worker, beat, a management command — writes its counters and
histograms into files of its own in that directory (named by its process id), and `/metrics` adds up every file it
finds there, so the node is scraped as one. The files must start empty when the service starts: files of processes
from an earlier run would otherwise pile up. Which process is the first of a run is decided with a lock on
`<directory>/.lock`: every process holds it shared for as long as it lives (the operating system lets go of it
when the process ends, however it ends), and a process that can take it exclusively is alone, so it empties the
directory first. A web worker restarting next to a running Celery worker therefore finds the lock held and keeps
the files (the totals go on); `make run` after Ctrl-C, or a node's processes started again after all of them
stopped, start from empty files.

Settings call `join()` before anything imports prometheus_client: the client reads PROMETHEUS_MULTIPROC_DIR when
it is first imported, and processes forked afterwards (gunicorn's and Celery's children) inherit the variable and
the lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

_lock_fd: int | None = None  # open for the process's lifetime: its shared lock marks the process as alive


def join(directory: Path) -> None:
    """Make this process one of those writing their metrics into `directory`: create it, empty it when no other
    process uses it, take the shared lock and point prometheus-client at it (PROMETHEUS_MULTIPROC_DIR)."""
    global _lock_fd
    directory.mkdir(parents=True, exist_ok=True)
    # Read-only is enough for a lock: processes of the node running as other users share one lock file.
    lock_fd = os.open(directory / ".lock", os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass  # another process of the node is running: its files stay
    else:
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
    fcntl.flock(lock_fd, fcntl.LOCK_SH)
    if _lock_fd is not None:
        os.close(_lock_fd)  # a directory joined before (tests move between directories)
    _lock_fd = lock_fd
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
