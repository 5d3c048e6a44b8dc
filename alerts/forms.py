"""The console's form for a chat robot. It shapes and labels the input; the rules (addresses, the DingTalk secret)
live in `alerts.services`, whose errors the view copies onto the fields."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from portal.models import ServiceProvider

from .models import RobotKind, Severity


class ChannelForm(forms.Form):
    """`owners`: the (value, label, owner) the user may choose from (selectors.owner_choices); a posted value that
    is not one of them is refused, whatever id it names."""

    owner = forms.ChoiceField(label=_("Alerts of"))
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("For you to tell robots apart, e.g. the group's name."),
        widget=forms.TextInput(attrs={"style": "width:100%"}),
    )
    kind = forms.ChoiceField(label=_("Robot"), choices=RobotKind.choices)
    webhook_url = forms.CharField(
        label=_("Webhook address"),
        max_length=500,
        help_text=_(
            "The robot's Webhook address as its group settings show it. Stored encrypted and never shown again."
        ),
        widget=forms.TextInput(attrs={"style": "width:100%", "autocomplete": "off", "spellcheck": "false"}),
    )
    secret = forms.CharField(
        label=_("Signing secret"),
        max_length=200,
        required=False,
        help_text=_("DingTalk only: the secret of its 加签 security setting (starts with SEC). Never shown again."),
        widget=forms.PasswordInput(attrs={"style": "width:100%", "autocomplete": "off"}),
    )
    min_severity = forms.TypedChoiceField(
        label=_("Lowest severity"), choices=Severity.choices, coerce=int, initial=Severity.WARNING
    )
    quiet_minutes = forms.IntegerField(
        label=_("Quiet period (minutes)"),
        min_value=0,
        max_value=1440,
        help_text=_(
            "After a message about a rule and a merchant, more of the same wait this long before the next is sent "
            "(the console lists each). 0: none."
        ),
    )

    def __init__(self, *args, owners: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.owners = {value: owner for value, _label, owner in owners}
        field = self.fields["owner"]
        field.choices = [(value, self._label(owner, label)) for value, label, owner in owners]
        if len(owners) == 1:
            field.widget = forms.HiddenInput()
            field.initial = owners[0][0]
        self.fields["quiet_minutes"].initial = settings.ALERT_DEFAULT_QUIET_MINUTES

    @staticmethod
    def _label(owner, name: str) -> str:
        if isinstance(owner, ServiceProvider):
            return _("%(name)s (the provider and all its merchants)") % {"name": name}
        return name

    def clean_owner(self):
        return self.owners[self.cleaned_data["owner"]]
