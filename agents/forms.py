"""The dashboard's agent form: every setting, with the providers' real models and voices."""

from __future__ import annotations

from typing import Any

from django import forms

from agents.builtin_tools import BUILTIN_TOOL_CHOICES
from agents.models import CONFIG_FIELDS, WEBHOOK_EVENT_CHOICES, Agent
from orgs.models import Organization


def _org_choices(org: Organization, app_model: str) -> list[tuple[str, str]]:
    """(public id, name) of the org's knowledge bases / MCP servers, when those apps are installed."""
    from django.apps import apps

    try:
        model = apps.get_model(app_model)
    except LookupError:
        return []
    return [(str(pid), name) for pid, name in model.objects.for_org(org).values_list("public_id", "name")]


class DestinationsField(forms.CharField):
    """Named numbers, one per line: ``label | number or SIP URI | description``.

    Parsed into ``[{"label", "number", "description"}]``; the model's validation
    (``agents.models.validate_config``) checks and normalises each entry.
    """

    widget = forms.Textarea(attrs={"rows": 3, "placeholder": "Sales | +14155550100 | New orders and quotes"})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return "\n".join(" | ".join(filter(None, [str(e.get("label", "")), str(e.get("number", "")),
                                                       str(e.get("description", ""))]))
                             for e in value if isinstance(e, dict))
        return value

    def to_python(self, value: Any) -> list[dict[str, str]]:
        if isinstance(value, list):
            return value
        entries = []
        for number, line in enumerate(str(value or "").splitlines(), start=1):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split("|", 2)]
            if len(parts) < 2:
                raise forms.ValidationError(f"Line {number}: write “name | number or SIP URI | description”.")
            entries.append({"label": parts[0], "number": parts[1], "description": parts[2] if len(parts) > 2 else ""})
        return entries

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != (initial or [])
        except forms.ValidationError:
            return True


class AgentForm(forms.ModelForm):
    # Free text with suggestions (a <datalist> per provider in the template): Hume
    # voices are ids, not names; validation checks the value against the provider.
    model = forms.CharField(required=False, widget=forms.TextInput(attrs={"list": "agent-models"}),
                            help_text="Empty uses the provider's current default.")
    voice = forms.CharField(required=False, widget=forms.TextInput(attrs={"list": "agent-voices"}),
                            help_text="Empty uses the provider's default voice.")
    builtin_tools = forms.MultipleChoiceField(choices=BUILTIN_TOOL_CHOICES, required=False,
                                              widget=forms.CheckboxSelectMultiple)
    webhook_events = forms.MultipleChoiceField(choices=WEBHOOK_EVENT_CHOICES, required=False,
                                               widget=forms.CheckboxSelectMultiple)
    transfer_destinations = DestinationsField(
        required=False, label="Transfer destinations",
        help_text="One per line: name | E.164 number or sip:user@host | description for the agent. "
                  "The transfer tool can reach only these (the agent picks by name).")
    sms_recipients = DestinationsField(
        required=False, label="Extra SMS recipients",
        help_text="One per line: name | E.164 number | description. Empty: the SMS tool texts only the caller.")
    knowledge_base_ids = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                                   label="Knowledge bases")
    mcp_server_ids = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                               label="MCP tool servers")
    analysis_schema = forms.JSONField(required=False, widget=forms.Textarea(attrs={"rows": 5}),
                                      help_text=Agent._meta.get_field("analysis_schema").help_text)
    provider_options = forms.JSONField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                       help_text=Agent._meta.get_field("provider_options").help_text)

    class Meta:
        model = Agent
        fields = list(CONFIG_FIELDS)
        widgets = {
            "system_prompt": forms.Textarea(attrs={"rows": 10}),
            "first_message": forms.Textarea(attrs={"rows": 2}),
            "voicemail_message": forms.Textarea(attrs={"rows": 2}),
            "success_criteria": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["knowledge_base_ids"].choices = _org_choices(org, "knowledge.KnowledgeBase")
        self.fields["mcp_server_ids"].choices = _org_choices(org, "integrations.McpServer")

    def clean_analysis_schema(self) -> Any:
        return self.cleaned_data.get("analysis_schema") or {}

    def clean_provider_options(self) -> Any:
        return self.cleaned_data.get("provider_options") or {}

    def config_values(self) -> dict[str, Any]:
        """The validated values of the fields the user changed."""
        return {field: self.cleaned_data[field] for field in self.changed_data if field in CONFIG_FIELDS}


class PublishForm(forms.Form):
    note = forms.CharField(max_length=200, required=False)
