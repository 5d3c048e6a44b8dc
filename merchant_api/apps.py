from django.apps import AppConfig


class MerchantApiConfig(AppConfig):
    name = "merchant_api"
    verbose_name = "Merchant API"

    def ready(self) -> None:
        from merchant_api import schema  # noqa: F401  (registers the OpenAPI description of the API's OAuth2)
