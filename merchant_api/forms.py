"""Console form for a new API client (the rules live in `merchant_api.services`)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from portal.models import Merchant


class ApiClientForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=100, help_text=_("What will use it, e.g. the POS system or the ERP.")
    )
    merchant = forms.ModelChoiceField(label=_("Merchant"), queryset=Merchant.objects.none())

    def __init__(self, *args, merchants, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["merchant"].queryset = merchants
