from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    verbose_name = _("Reconciliation")

    def ready(self) -> None:
        from portal.metrics import read_at_scrape
        from reconciliation import metrics

        read_at_scrape("reconciliation", metrics.readings)
