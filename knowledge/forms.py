"""Dashboard forms. Validation of content happens in services/ingestion, not here."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.utils.functional import lazy
from django.utils.text import format_lazy

from knowledge.embeddings import model_choices
from knowledge.models import Language
from knowledge.search import MAX_K
from voiceplatform.uploads import size_hint


def _model_field() -> forms.ChoiceField:
    labels = {"local": "Local, offline", "openai": "OpenAI", "gemini": "Gemini"}
    return forms.ChoiceField(
        label="Embedding model",
        choices=[(f"{b}/{m}/{d}", f"{labels[b]} — {m} ({d} dims)") for b, m, d in model_choices()],
        help_text="Changing it re-embeds every document. API models use the organisation's credentials.",
    )


def split_model(value: str) -> dict[str, Any]:
    backend, model, dims = value.split("/")
    return {"embedding_backend": backend, "embedding_model": model, "embedding_dimensions": int(dims)}


class KnowledgeBaseForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    model = _model_field()
    language = forms.ChoiceField(
        choices=Language.choices, initial=Language.ENGLISH, required=False,
        help_text="The documents' language: keyword matching stems words the way this language does. "
                  "For non-English documents choose the multilingual embedding model too.")


class SourceForm(forms.Form):
    title = forms.CharField(max_length=255, required=False, help_text="Defaults to the file name or URL.")
    file = forms.FileField(required=False, help_text=format_lazy(
        ".txt .md .pdf .html .docx .csv, {}", lazy(lambda: size_hint(settings.KNOWLEDGE_MAX_UPLOAD_BYTES), str)()))
    text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}), label="Or paste text")
    url = forms.URLField(required=False, label="Or a web page URL", max_length=2000, assume_scheme="https")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        given = [k for k in ("file", "text", "url") if data.get(k)]
        if len(given) != 1:
            raise forms.ValidationError("Give exactly one of: a file, pasted text, or a URL.")
        return data


class SearchForm(forms.Form):
    query = forms.CharField(max_length=2000, widget=forms.TextInput(attrs={"autofocus": True, "size": 60}))
    k = forms.IntegerField(min_value=1, max_value=MAX_K, initial=5, label="Results")
    bases = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, label="Knowledge bases")

    def __init__(self, *args: Any, base_choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["bases"].choices = base_choices
