from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = _("Payments")

    def ready(self) -> None:
        from payments import metrics
        from payments.gateways import http
        from portal.db import release_connections
        from portal.metrics import read_at_scrape

        # Whoever calls an upstream — a terminal's request, a worker's task, PayScore, members — holds no database
        # connection while it answers (up to the read timeout): the connection goes back to the pool just before
        # the request is sent, after everything the call needed (credentials) was read. One inside a transaction
        # stays (portal.db.release_connections).
        if release_connections not in http.before_send:
            http.before_send.append(release_connections)
        read_at_scrape("payments", metrics.readings)
