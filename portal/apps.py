from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Merchants, stores and devices"

    def ready(self) -> None:
        from portal import schema  # noqa: F401  (registers the OpenAPI description of terminal auth)
