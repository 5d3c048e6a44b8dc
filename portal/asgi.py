"""The ASGI application: what the web tier serves (portal/gunicorn_conf.py runs it on uvicorn workers)."""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

from portal.handlers import application as terminal_aware_application  # noqa: E402 - needs the settings module

application = terminal_aware_application()


def freeze_long_lived_objects() -> None:
    """Settings, apps, models, the URLconf and every view it imports live as long as the process. Moved into the
    garbage collector's permanent generation, full (generation 2) collections no longer walk them: measured on the
    payment path, each full collection otherwise paused the whole worker — every request it was serving — for
    ~80 ms once per several hundred payments (in-process, 800 payments); frozen, ~2 ms."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports the URLconf and its views now, so they are frozen too
    gc.collect()
    gc.freeze()


def _serve_static_in_development(app):
    """`make run` has no proxy in front: with DEBUG on, the console's assets are served by the application (as
    Django's development server would); production serves STATIC_ROOT from the proxy."""
    from django.conf import settings

    if settings.DEBUG:
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        return ASGIStaticFilesHandler(app)
    return app


application = _serve_static_in_development(application)
freeze_long_lived_objects()
