"""The web tier's configuration: gunicorn supervising uvicorn workers that serve the ASGI application.

Production, `make bench` and `make faults` all start the web tier with this module (`--config
python:portal.gunicorn_conf`, the `web` line of deploy/Procfile); it is part of the package, so an installed project
starts the same way from any directory. A waiting terminal (`POST payments` waiting for an outcome,
`GET payments/{no}?wait=`) costs a coroutine and a subscription entry, not a worker: the waiting part of those views
is async and is woken by the state change's notification (portal.wakeup). Settings come from the environment:

    WEB_BIND        address to listen on (default 0.0.0.0:8000)
    WEB_WORKERS     uvicorn worker processes (default: the number of CPU cores)
    WEB_ACCESS_LOG  access log file, "-" for stdout (default: none; the proxy in front logs requests)
"""

import os

bind = os.environ.get("WEB_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_WORKERS") or os.cpu_count() or 2)
worker_class = "uvicorn_worker.UvicornWorker"
# A request can legitimately take PAYMENT_CALL_TIMEOUT (10 s) plus PAYMENT_WAIT_SECONDS, or a 20 s long-poll:
# gunicorn's timeout only restarts a worker whose event loop stopped answering its heartbeat, so 60 s is generous.
timeout = 60
graceful_timeout = 30
keepalive = 30  # terminals reuse their connection for the POST and the long-polls that follow it
backlog = 2048
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"
control_socket_disable = True  # gunicorn's runtime control socket: not used, and two servers on a host would share it


def on_starting(server) -> None:
    """The master loads the settings before it starts a worker: they join METRICS_DIR (portal/metrics_dir.py; not
    with METRICS_ENABLED false), so the master holds the node's metrics lock for as long as it runs (a worker
    restarting keeps the files) and the workers inherit PROMETHEUS_MULTIPROC_DIR."""
    from django.conf import settings

    settings.METRICS_DIR  # noqa: B018 - reading a setting loads them all


def child_exit(server, worker) -> None:
    """A worker ended: its live gauges (if any) leave the scrape; its counters and histograms stay in the totals."""
    from django.conf import settings
    from prometheus_client import multiprocess

    if not settings.METRICS_ENABLED:
        return  # no METRICS_DIR joined: nothing of the worker's to remove
    multiprocess.mark_process_dead(worker.pid)
