from django.apps import AppConfig


class PayscoreConfig(AppConfig):
    name = "payscore"
