"""Dashboard forms: a retention policy (org or one agent) and a data-subject request."""

from __future__ import annotations

from typing import Any

from django import forms

from agents.models import Agent
from orgs.models import Organization
from privacy.models import KINDS
from privacy.services import MAX_DAYS


class RetentionForm(forms.Form):
    """The five retention fields (empty: keep always; 0: do not store), and for an
    override the agent it applies to."""

    agent = forms.ModelChoiceField(queryset=Agent.objects.none(), required=False, to_field_name="public_id",
                                   empty_label="The whole organisation")

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = Agent.objects.for_org(org)  # type: ignore[attr-defined]
        for kind, label in KINDS.items():
            self.fields[kind] = forms.IntegerField(
                label=f"{label} (days)", required=False, min_value=0, max_value=MAX_DAYS,
                help_text="Empty: keep always. 0: do not store.",
                widget=forms.NumberInput(attrs={"min": "0", "max": str(MAX_DAYS), "placeholder": "always"}))


class SubjectForm(forms.Form):
    """Who a data-subject request is about: a phone number or an e-mail address."""

    phone = forms.CharField(required=False, max_length=40, label="Phone number",
                            widget=forms.TextInput(attrs={"placeholder": "+14155550142", "autocomplete": "off"}))
    email = forms.CharField(required=False, max_length=254, label="or e-mail address",
                            widget=forms.TextInput(attrs={"autocomplete": "off"}))
    confirm = forms.BooleanField(required=False, label="I understand erasing cannot be undone")
