from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Merchants, stores and devices"

    def ready(self) -> None:
        from portal import schema  # noqa: F401  (registers the OpenAPI description of terminal auth)
        from portal.fields import fernet

        fernet()  # a malformed FIELD_ENCRYPTION_KEY stops the start-up, not the first payment
