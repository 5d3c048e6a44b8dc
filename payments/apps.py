from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        from payments.gateways import http
        from portal.db import release_connections

        # Whoever calls an upstream — a terminal's request, a worker's task, PayScore, members — holds no database
        # connection while it answers (up to the read timeout): the connection goes back to the pool just before
        # the request is sent, after everything the call needed (credentials) was read. One inside a transaction
        # stays (portal.db.release_connections).
        if release_connections not in http.before_send:
            http.before_send.append(release_connections)
