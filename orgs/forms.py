from __future__ import annotations

from typing import Any

import phonenumbers
from django import forms

from orgs.models import PROVIDER_FIELDS, Organization, Provider, Role, validate_timezone


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ["name", "timezone", "default_country", "max_concurrent_calls"]

    def clean_timezone(self) -> str:
        value = self.cleaned_data["timezone"]
        validate_timezone(value)
        return value

    def clean_default_country(self) -> str:
        value = self.cleaned_data["default_country"].upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise forms.ValidationError(f"{value!r} is not a two-letter country code such as US or GB.")
        return value


class CreateOrganizationForm(OrganizationForm):
    class Meta(OrganizationForm.Meta):
        fields = ["name", "timezone", "default_country"]


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    role = forms.ChoiceField(choices=[(r.value, r.label) for r in (Role.VIEWER, Role.EDITOR, Role.ADMIN)],
                             initial=Role.EDITOR)


class CredentialForm(forms.Form):
    """Built per provider: one password input per secret (never pre-filled)."""

    def __init__(self, provider: str, *args: Any, hints: dict[str, str] | None = None,
                 config: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.provider = Provider(provider)
        spec = PROVIDER_FIELDS[provider]
        hints = hints or {}
        for name in spec["secret"]:
            hint = hints.get(name)
            self.fields[f"secret_{name}"] = forms.CharField(
                label=name.replace("_", " "), required=hint is None,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
                help_text=f"Stored {hint}. Leave blank to keep it." if hint else "")
        for name in spec["config"]:
            self.fields[f"config_{name}"] = forms.CharField(
                label=f"{name.replace('_', ' ')} (optional)", required=False, initial=(config or {}).get(name, ""))

    def secrets(self) -> dict[str, str]:
        return {k[7:]: v for k, v in self.cleaned_data.items() if k.startswith("secret_") and v}

    def config(self) -> dict[str, str]:
        return {k[7:]: v for k, v in self.cleaned_data.items() if k.startswith("config_") and v}
