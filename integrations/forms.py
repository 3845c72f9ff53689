"""Dashboard forms. Validation that matters lives in the services; forms shape the input."""
from __future__ import annotations

from typing import Any

from django import forms

from integrations.mcp_servers import SERVERS
from integrations.models import McpTransport
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
