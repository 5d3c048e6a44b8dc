"""The WSGI application, for WSGI servers and in-process tools (the benchmark's profiler). The web tier serves
portal.asgi: under WSGI a waiting terminal holds its worker thread for as long as it waits."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

from portal.asgi import freeze_long_lived_objects  # noqa: E402 - needs the settings above

freeze_long_lived_objects()
