"""Dashboard pages for the organisation's LiveKit dispatch rules: which agent LiveKit's
webhooks send into which rooms (``calls.services.livekit_dispatch``).

The same service functions as the API and the admin (``save_rule``, ``delete_rule``), so
the same checks: a rule's errors land on the field they name. Every member reads; admins
and owners change (the API's write role). Another organisation's rule is a 404.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View

from agents.models import Agent
from calls.models import LiveKitDispatchRule, ParticipantKind
from calls.services.errors import CallError
from calls.services.livekit_dispatch import delete_rule, save_rule, webhook_url
from orgs.credentials import configured_providers
from orgs.models import Role, role_at_least
from voiceplatform.errors import show_error
from voiceplatform.views import OrgViewMixin


class AttributesField(forms.JSONField):
    """A JSON object typed in a textarea; empty means none."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value in (None, {}, "") else value if isinstance(value, str) else super().prepare_value(value)

    def to_python(self, value: Any) -> Any:
        return {} if isinstance(value, str) and not value.strip() else super().to_python(value)


class DispatchRuleForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. Support rooms"}))
    agent = forms.ModelChoiceField(queryset=Agent.objects.none(), to_field_name="public_id",
                                   help_text="The agent sent into matching rooms.")
    room_prefix = forms.CharField(label="Room name prefix", max_length=128, required=False,
                                  help_text="Rooms whose name starts with this, e.g. support-. Empty: every room.")
    participant_kind = forms.ChoiceField(label="Participant", choices=ParticipantKind.choices,
                                         help_text="Phone callers come through LiveKit SIP; apps and browsers "
                                                   "are standard participants.")
    attributes = AttributesField(required=False, widget=forms.Textarea(attrs={
        "rows": 3, "spellcheck": "false", "placeholder": '{"department": "support"}'}),
        help_text="Participant attributes (or metadata keys) that must all match, as a JSON object. Empty: any.")
    priority = forms.IntegerField(min_value=0, initial=100, help_text="Lower numbers are tried first; the first "
                                                                       "matching rule sends its agent.")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, org: Any, read_only: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        agent_field = self.fields["agent"]
        assert isinstance(agent_field, forms.ModelChoiceField)
        agent_field.queryset = Agent.objects.for_org(org).order_by("name")
        if read_only:
            for field in self.fields.values():
                field.disabled = True


def _initial(rule: LiveKitDispatchRule) -> dict[str, Any]:
    return {"name": rule.name, "agent": rule.agent.public_id, "room_prefix": rule.room_prefix,
            "participant_kind": rule.participant_kind, "attributes": rule.attributes, "priority": rule.priority,
            "enabled": rule.enabled}


class _RulesView(OrgViewMixin, View):
    write_role = Role.ADMIN

    @property
    def can_change(self) -> bool:
        return role_at_least(self.role, Role.ADMIN)

    def page(self, request: HttpRequest, template: str, status: int = 200, **context: Any) -> HttpResponse:
        return render(request, template, {"can_change": self.can_change, **context}, status=status)

    def save(self, request: HttpRequest, form: DispatchRuleForm, rule: LiveKitDispatchRule | None) -> bool:
        """Save through the service; False (the error on its field) when it refuses."""
        if not form.is_valid():
            return False
        try:
            saved = save_rule(self.org, self.actor, rule, **form.cleaned_data)
        except CallError as exc:
            show_error(request, exc, form)
            return False
        messages.success(request, f"Saved the dispatch rule “{saved.name}”.")
        return True


class DispatchRuleListView(_RulesView):
    def get(self, request: HttpRequest) -> HttpResponse:
        rules = LiveKitDispatchRule.objects.for_org(self.org).select_related("agent")
        return self.page(request, "calls/livekit_rules.html", rules=rules, webhook_url=webhook_url(self.org),
                         has_credential="livekit" in configured_providers(self.org),
                         new_rule_url=reverse("calls:livekit-rule-create"))


class DispatchRuleCreateView(_RulesView):
    required_role = Role.ADMIN

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.page(request, "calls/livekit_rule_form.html", form=DispatchRuleForm(org=self.org), rule=None)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = DispatchRuleForm(request.POST, org=self.org)
        if self.save(request, form, None):
            return redirect("calls:livekit-rules")
        return self.page(request, "calls/livekit_rule_form.html", status=400, form=form, rule=None)


class DispatchRuleEditView(_RulesView):
    def _rule(self, public_id: Any) -> LiveKitDispatchRule:
        return get_object_or_404(LiveKitDispatchRule.objects.for_org(self.org).select_related("agent"),
                                 public_id=public_id)

    def get(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        rule = self._rule(public_id)
        form = DispatchRuleForm(org=self.org, initial=_initial(rule), read_only=not self.can_change)
        return self.page(request, "calls/livekit_rule_form.html", form=form, rule=rule)

    def post(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        rule = self._rule(public_id)
        if request.POST.get("action") == "delete":
            delete_rule(rule, self.actor)
            messages.success(request, f"Deleted the dispatch rule “{rule.name}”.")
            return redirect("calls:livekit-rules")
        form = DispatchRuleForm(request.POST, org=self.org)
        if self.save(request, form, rule):
            return redirect("calls:livekit-rules")
        return self.page(request, "calls/livekit_rule_form.html", status=400, form=form, rule=rule)
