"""Dashboard forms. Validation that matters lives in the services; forms shape the input."""
from __future__ import annotations

import json
from typing import Any

from django import forms

from integrations.mcp_servers import SERVERS
from integrations.models import HttpMethod, McpTransport
from integrations.webhooks import EVENT_TYPES


def parse_header_lines(text: str) -> dict[str, str]:
    """``Name: value`` per line → dict; a line without a colon is an error naming the line."""
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise forms.ValidationError(f"Line {number}: write headers as “Name: value”.")
        headers[name.strip()] = value.strip()
    return headers


class McpServerForm(forms.Form):
    name = forms.CharField(max_length=100)
    url = forms.CharField(max_length=500, label="URL", help_text="e.g. https://tools.example.com/mcp (SSE: …/sse)")
    transport = forms.ChoiceField(choices=McpTransport.choices, initial=McpTransport.STREAMABLE_HTTP)
    headers = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Auth headers",
                              help_text="One “Name: value” per line, e.g. Authorization: Bearer …. Stored encrypted.")

    def clean_headers(self) -> dict[str, str]:
        return parse_header_lines(self.cleaned_data.get("headers") or "")


class McpServerEditForm(McpServerForm):
    enabled = forms.BooleanField(required=False)
    headers = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Replace auth headers",
                              help_text="Leave empty to keep the stored headers; values are never shown.")


class ConnectForm(forms.Form):
    """The credential fields of one of our own servers, built from its registry entry."""

    def __init__(self, kind: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", kind)
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.entry = SERVERS[kind]
        for header, label in self.entry.credential_headers:
            secret = "token" in header or "secret" in header
            self.fields[header] = forms.CharField(
                label=label, max_length=2000,
                widget=forms.PasswordInput(render_value=False) if secret else forms.TextInput())

    def credentials(self) -> dict[str, str]:
        return {header: self.cleaned_data[header] for header, _label in self.entry.credential_headers}


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(max_length=500, label="URL", assume_scheme="https")
    description = forms.CharField(max_length=200, required=False)
    events = forms.MultipleChoiceField(choices=[("*", "All events")] + [(e, e) for e in EVENT_TYPES],
                                       widget=forms.CheckboxSelectMultiple)


class WebhookEndpointEditForm(WebhookEndpointForm):
    enabled = forms.BooleanField(required=False)


HEADER_ROWS = 5


class HttpToolForm(forms.Form):
    """A custom HTTP tool: the parameters as a JSON box, headers as name/value rows (values
    are write-only: on edit an empty value keeps the stored one, a removed name drops it)."""

    name = forms.CharField(max_length=64, help_text="The function name the model sees, e.g. lookup_order.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                  help_text="What it does and when to use it; the model reads this.")
    parameters = forms.CharField(required=False, label="Parameters (JSON Schema)",
                                 widget=forms.Textarea(attrs={"rows": 8, "class": "mono", "spellcheck": "false"}),
                                 help_text='An object schema, e.g. {"type": "object", "properties": {"order": '
                                           '{"type": "string"}}, "required": ["order"]}.')
    url = forms.CharField(max_length=500, label="Endpoint URL", help_text="https://…; called on every tool call.")
    method = forms.ChoiceField(choices=HttpMethod.choices, initial=HttpMethod.POST)
    timeout_s = forms.FloatField(label="Timeout (seconds)", initial=5, min_value=1, max_value=30)
    filler_text = forms.CharField(max_length=200, required=False, label="Say while waiting",
                                  help_text="Optional, e.g. “One moment while I look that up.”")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, stored_headers: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored_headers = list(stored_headers or [])
        for i in range(max(HEADER_ROWS, len(self.stored_headers) + 2)):
            stored = self.stored_headers[i] if i < len(self.stored_headers) else ""
            self.fields[f"header_name_{i}"] = forms.CharField(required=False, label=f"Header {i + 1} name",
                                                              initial=stored)
            self.fields[f"header_value_{i}"] = forms.CharField(
                required=False, label=f"Header {i + 1} value", widget=forms.PasswordInput(
                    render_value=False, attrs={"placeholder": "unchanged" if stored else "", "autocomplete": "off"}))

    def main_fields(self) -> list[Any]:
        return [self[name] for name in self.fields if not name.startswith("header_")]

    def header_rows(self) -> list[tuple[Any, Any]]:
        count = len([n for n in self.fields if n.startswith("header_name_")])
        return [(self[f"header_name_{i}"], self[f"header_value_{i}"]) for i in range(count)]

    def clean_parameters(self) -> Any:
        text = (self.cleaned_data.get("parameters") or "").strip()
        if not text:
            return {}
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") \
                from None

    def headers(self) -> dict[str, str | None]:
        """name → new value, or None to keep the stored value of that name."""
        chosen: dict[str, str | None] = {}
        for name_field, value_field in self.header_rows():
            name = (self.cleaned_data.get(name_field.name) or "").strip()
            value = self.cleaned_data.get(value_field.name) or ""
            if not name:
                if value:
                    self.add_error(name_field.name, "Give this header a name.")
                continue
            if not value and name not in self.stored_headers:
                self.add_error(value_field.name, f"Header {name} needs a value.")
                continue
            chosen[name] = value or None
        return chosen
