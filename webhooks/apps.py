from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = _("Webhooks")

    def ready(self) -> None:
        from portal.metrics import read_at_scrape
        from webhooks import metrics

        read_at_scrape("webhooks", metrics.readings)
