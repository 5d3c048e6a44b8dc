from django.apps import AppConfig


class MerchantApiConfig(AppConfig):
    name = "merchant_api"
    verbose_name = "Merchant API"
