"""Dashboard forms. They check shapes only; the services decide what is valid and
their errors are attached to the field they name."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.functional import lazy
from django.utils.text import format_lazy

from batches.models import RETRYABLE_OUTCOMES, MissedRunPolicy, ScheduleKind
from batches.windows import DAY_NAMES
from voiceplatform.uploads import size_hint

DAY_CHOICES = [(d, d.capitalize()) for d in DAY_NAMES]


class BatchForm(forms.Form):
    name = forms.CharField(max_length=200)
    agent = forms.ChoiceField()
    from_number = forms.ChoiceField(label="Caller ID number")
    file = forms.FileField(required=False, allow_empty_file=True, help_text=format_lazy(
        "CSV or JSON, {}. UTF-8 or Latin-1; comma, semicolon or tab separated; first line is the header.",
        lazy(size_hint, str)()))
    upload_token = forms.CharField(required=False, widget=forms.HiddenInput)
    phone_column = forms.CharField(required=False, help_text="Leave empty to detect it from the header.")
    variable_columns = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                       help_text="One per line: column=variable_name. Empty: every other "
                                                 "column becomes a variable under its own name.")
    concurrency = forms.IntegerField(initial=5, min_value=1, max_value=100)
    calls_per_second = forms.FloatField(initial=1.0, min_value=0.01, max_value=50)
    max_attempts = forms.IntegerField(initial=3, min_value=1, max_value=10)
    retry_delay_s = forms.IntegerField(initial=600, min_value=0, label="Retry delay (seconds)")
    retry_on = forms.MultipleChoiceField(choices=[(o.value, o.label) for o in RETRYABLE_OUTCOMES],
                                         initial=[o.value for o in RETRYABLE_OUTCOMES], required=False,
                                         widget=forms.CheckboxSelectMultiple)
    window_days = forms.MultipleChoiceField(choices=DAY_CHOICES, required=False, widget=forms.CheckboxSelectMultiple,
                                            label="Calling days (callee's local time)")
    window_start = forms.CharField(required=False, initial="09:00", label="From (HH:MM)")
    window_end = forms.CharField(required=False, initial="20:00", label="Until (HH:MM)")

    def __init__(self, *args: Any, agents: Any = (), numbers: Any = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].choices = [(str(a.public_id), a.name) for a in agents]
        self.fields["from_number"].choices = [(str(n.public_id), str(n)) for n in numbers]

    def variables(self) -> dict[str, str] | None:
        text = (self.cleaned_data.get("variable_columns") or "").strip()
        if not text:
            return None
        mapping: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            column, sep, variable = line.partition("=")
            if not sep:
                self.add_error("variable_columns", f"line {number}: write column=variable_name")
                return None
            mapping[column.strip()] = variable.strip()
        return mapping

    def window(self) -> dict[str, Any] | None:
        days = self.cleaned_data.get("window_days") or []
        if not days:
            return None
        return {"days": days, "start": self.cleaned_data.get("window_start") or "",
                "end": self.cleaned_data.get("window_end") or ""}


class DoNotCallAddForm(forms.Form):
    e164 = forms.CharField(max_length=40, label="Number")
    reason = forms.CharField(max_length=200, required=False)


class DoNotCallImportForm(forms.Form):
    file = forms.FileField(allow_empty_file=True, help_text=lazy(lambda: f"CSV, {size_hint()}.", str)())
    phone_column = forms.CharField(required=False)


class ScheduleForm(forms.Form):
    name = forms.CharField(max_length=200)
    agent = forms.ChoiceField()
    from_number = forms.ChoiceField(label="Caller ID number")
    to = forms.CharField(max_length=40, label="Number to call")
    kind = forms.ChoiceField(choices=ScheduleKind.choices)
    run_at = forms.CharField(required=False, label="Date and time (one-time)",
                             widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    cron = forms.CharField(required=False, help_text="minute hour day-of-month month day-of-week, e.g. 0 9 * * mon-fri")
    timezone = forms.CharField(initial="UTC")
    variables = forms.JSONField(required=False, initial=dict)
    enabled = forms.BooleanField(required=False, initial=True)
    max_attempts = forms.IntegerField(initial=1, min_value=1, max_value=10)
    retry_delay_s = forms.IntegerField(initial=300, min_value=0, max_value=86400)
    missed_run_policy = forms.ChoiceField(choices=MissedRunPolicy.choices)

    def __init__(self, *args: Any, agents: Any = (), numbers: Any = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].choices = [(str(a.public_id), a.name) for a in agents]
        self.fields["from_number"].choices = [(str(n.public_id), str(n)) for n in numbers]
