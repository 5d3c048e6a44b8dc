"""Console form for a bill file given by an operator (the rules about the bill itself live in the services)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from portal.models import Merchant

MAX_BILL_BYTES = 100 * 1024 * 1024


class BillUploadForm(forms.Form):
    merchant = forms.ModelChoiceField(label=_("Merchant"), queryset=Merchant.objects.none())
    bill_date = forms.DateField(label=_("Bill date"), widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}))
    file = forms.FileField(
        label=_("Bill file"),
        help_text=_("The WeChat Pay trade bill (ALL) as downloaded: CSV text or gzip, at most 100 MB."),
    )

    def __init__(self, *args, merchants, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["merchant"].queryset = merchants

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_BILL_BYTES:
            raise forms.ValidationError(_("The file is larger than 100 MB."))
        return upload
