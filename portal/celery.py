"""The Celery app: one for web and workers, configured from Django settings (CELERY_* names)."""

import os

from celery import Celery, signals

from portal import request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
request_id.connect_task_signals()


@signals.setup_logging.connect
def _log_as_the_web_tier(**kwargs) -> None:
    """Workers and beat log through the settings' LOGGING (LOG_FORMAT, the request id on each line) instead of
    Celery's own handler and format; with this receiver Celery leaves the root logger and stdout alone."""
    from django.conf import settings
    from django.utils.log import configure_logging

    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)


def _ensure_filesystem_broker_folders() -> None:
    """kombu's filesystem transport expects its folders to exist; the embedded default creates them."""
    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        for key in ("data_folder_in", "data_folder_out", "processed_folder"):
            os.makedirs(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key], exist_ok=True)


@app.on_after_configure.connect
def _prepare_broker(sender, **kwargs) -> None:
    _ensure_filesystem_broker_folders()
