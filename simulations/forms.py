"""Dashboard forms for agent tests (the API's serializers validate the same through the services)."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from simulations.models import Scenario
from simulations.yaml_io import MAX_YAML_BYTES


class JsonField(forms.CharField):
    """A JSON value typed into a textarea."""

    def __init__(self, *, empty: Any, **kwargs: Any) -> None:
        self.empty = empty
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict | list):
            return json.dumps(value, indent=1) if value else ""
        return value

    def to_python(self, value: Any) -> Any:
        text = (value or "").strip()
        if not text:
            return self.empty
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"This is not valid JSON ({exc.args[0].split(':')[0]}).") from None


class ScenarioForm(forms.ModelForm):
    variables = JsonField(empty={}, help_text='JSON object, e.g. {"customer_name": "Ann"}.')
    checks = JsonField(empty=[], help_text='JSON list, e.g. [{"type": "transfer", "destination": "Sales"}].')
    rubric = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="One criterion for the judge per line.")
    tool_stubs = JsonField(empty={}, help_text='Tool name → the response it gives instead of running.')

    class Meta:
        model = Scenario
        fields = ["name", "persona", "goal", "opening_line", "caller_provider", "mode", "max_turns", "max_seconds",
                  "variables", "checks", "rubric", "tool_stubs"]
        widgets = {"persona": forms.Textarea(attrs={"rows": 3}), "goal": forms.Textarea(attrs={"rows": 2}),
                   "opening_line": forms.TextInput()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and isinstance(self.instance.rubric, list):
            self.initial["rubric"] = "\n".join(self.instance.rubric)

    def clean_rubric(self) -> list[str]:
        return [line.strip() for line in (self.cleaned_data.get("rubric") or "").splitlines() if line.strip()]


class ImportForm(forms.Form):
    agent = forms.ChoiceField()
    file = forms.FileField(help_text=f"A suite file as exported (YAML), up to {MAX_YAML_BYTES // 1024} KB.")

    def __init__(self, *args: Any, agents: Any = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"] = forms.ChoiceField(choices=[(str(a.public_id), a.name) for a in agents])
