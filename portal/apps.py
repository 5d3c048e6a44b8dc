from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = _("Merchants, stores and devices")

    def ready(self) -> None:
        from portal import metrics, schema  # noqa: F401  (schema registers the OpenAPI description of terminal auth)
        from portal.fields import fernet

        fernet()  # a malformed FIELD_ENCRYPTION_KEY stops the start-up, not the first payment
        metrics.setup()  # Celery task outcomes; the broker's queue lengths when scraped
