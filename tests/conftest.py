import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection

from payments.terminal_client import TerminalClient
from portal import wakeup
from tests.factories import make_device


@pytest.fixture(autouse=True)
def _wakeup_listener_closed():
    """A test that waited on PostgreSQL started the wake-up listener, connected to the test database: close it after
    the test, so the database can be dropped at the end of the run."""
    yield
    wakeup.hub.stop_listener()


@pytest.fixture
def wsgi_transport():
    """httpx transport into this process's Django app: real HTTP semantics, same test database.

    Like Django's test client, each request runs with Django's "close old connections" hooks disconnected, which
    would otherwise end the test's transaction. Requests nest (the product calling the sandbox inside a terminal
    request), so the hooks come back only when the outermost request is done.
    """
    from django.core.signals import request_finished, request_started
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    # Not portal.wsgi: importing it freezes every object alive at that moment (connections of earlier tests'
    # threads included) out of the garbage collector's reach — right for a server starting up, not mid-suite.
    application = get_wsgi_application()

    depth = [0]

    def app(environ, start_response):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return serve(environ, start_response)
        # An event loop runs in this thread (Playwright's sync API in the browser tests): Django runs the async views
        # with async_to_sync, which refuses such a thread, so the request is served from a thread of its own.
        with ThreadPoolExecutor(max_workers=1) as executor:
            return executor.submit(serve_in_thread, environ, start_response).result()

    def serve_in_thread(environ, start_response):
        from django.db import connections

        try:
            return serve(environ, start_response)
        finally:
            connections.close_all()  # this thread's connections go back to the pool; the thread ends

    def serve(environ, start_response):
        if depth[0] == 0:
            request_started.disconnect(close_old_connections)
            request_finished.disconnect(close_old_connections)
        depth[0] += 1
        try:
            return list(application(environ, start_response))
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                request_started.connect(close_old_connections)
                request_finished.connect(close_old_connections)

    return httpx.WSGITransport(app=app)


@pytest.fixture
def device_and_secret(db):
    return make_device()


@pytest.fixture
def terminal(device_and_secret, wsgi_transport):
    device, secret = device_and_secret
    client = TerminalClient("http://testserver", device_id=device.device_id, secret=secret, transport=wsgi_transport)
    yield client
    client.close()


@pytest.fixture
def requires_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (run `make test` where initdb/pg_ctl exist, or set DATABASE_URL)")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Passwords are still hashed and checked; only the deliberately slow work factor is skipped in tests."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters live in the cache; each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True, scope="session")
def _in_memory_broker():
    """Tasks enqueued by code under test go to an in-memory broker nobody consumes: tests drive the services (and
    the sweeper) explicitly, so what a worker would do happens in the test, in order."""
    from portal.celery import app

    app.conf.broker_url = "memory://"
    app.conf.broker_transport_options = {}
    yield


# --- Metrics (portal/metrics.py) ------------------------------------------------------------------------------------
# The settings made this process write its metrics into METRICS_DIR (var/metrics of the checkout); the suite writes
# into directories of its own instead, so a `make run` or another test run on this checkout never adds to its counts.


def use_metrics_dir(directory):
    """From now on this process writes its metrics into `directory` (portal/metrics_dir.py), starting from zero.

    prometheus-client opens a process's files once, and again after a fork (when the process id changes): it is
    made to believe that a fork happened, so every metric already in use re-opens its file in the new directory."""
    from prometheus_client import values

    from portal import metrics_dir

    metrics_dir.join(directory)
    reopen = values.ValueClass._MmapedValue__check_for_pid_change
    dict(zip(reopen.__code__.co_freevars, reopen.__closure__, strict=True))["pid"].cell_contents["value"] = None


@pytest.fixture(autouse=True, scope="session")
def _suite_metrics_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("metrics")
    use_metrics_dir(directory)
    return directory


@pytest.fixture
def metrics_dir(tmp_path, _suite_metrics_dir):
    """An empty metrics directory of the test's own: a scrape shows only what the test counted."""
    directory = tmp_path / "metrics"
    use_metrics_dir(directory)
    yield directory
    use_metrics_dir(_suite_metrics_dir)


# A merchant wired to the in-process sandbox with a shared fake clock (payments, console, PayScore tests).
from tests.shop import make_shop, shop  # noqa: E402, F401
