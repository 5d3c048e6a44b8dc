from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MerchantApiConfig(AppConfig):
    name = "merchant_api"
    verbose_name = _("Merchant API")

    def ready(self) -> None:
        from merchant_api import schema  # noqa: F401  (registers the OpenAPI description of the API's OAuth2)
