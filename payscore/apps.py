from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PayscoreConfig(AppConfig):
    name = "payscore"
    verbose_name = _("PayScore")
