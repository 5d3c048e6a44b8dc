"""Console forms for webhook endpoints. They shape and label the input; the rules (an http(s) address that is not
private, known event types) live in `webhooks.services`, whose errors views copy onto the fields."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from .models import SUBSCRIBABLE, EventType

EVENT_CHOICES = [(value, EventType(value).label) for value in SUBSCRIBABLE]


class EndpointForm(forms.Form):
    """An endpoint's settings. Made with `merchants` (creating): which merchant it belongs to, hidden when the user
    sees only one; without (editing): whether it is enabled."""

    merchant = forms.ModelChoiceField(label=_("Merchant"), queryset=None, empty_label=None)
    url = forms.CharField(
        label=_("URL"),
        max_length=500,
        help_text=_("Where the events are POSTed, e.g. https://example.com/facepay/webhook."),
        widget=forms.URLInput(attrs={"style": "width:100%", "placeholder": "https://"}),
    )
    description = forms.CharField(
        label=_("Description"), max_length=100, required=False, widget=forms.TextInput(attrs={"style": "width:100%"})
    )
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=EVENT_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose one or more events.")},
    )
    is_active = forms.BooleanField(
        label=_("Enabled"),
        required=False,
        help_text=_("A disabled endpoint is sent nothing; its events wait and go out when it is enabled again."),
    )

    def __init__(self, *args, merchants: QuerySet | None = None, **kwargs):
        kwargs.setdefault("initial", {"events": list(SUBSCRIBABLE)})
        super().__init__(*args, **kwargs)
        if merchants is None:
            del self.fields["merchant"]
            return
        del self.fields["is_active"]
        field = self.fields["merchant"]
        field.queryset = merchants
        first = list(merchants[:2])
        if len(first) == 1:
            field.widget = forms.HiddenInput()
            field.initial = first[0].pk
