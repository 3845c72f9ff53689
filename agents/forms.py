"""The dashboard's agent form: every setting, grouped, labelled and provider-aware.

The form is laid out in :data:`SECTIONS` (Basics, Conversation, Tools and
knowledge, Analysis, and a collapsed Advanced); every field has a human label
and inline help (:data:`FIELD_TEXT`). What each provider offers comes from the
one catalogue, ``agents.providers``: the provider choice offers only providers
that are not retired (plus the agent's own), model and voice are pickers of
each provider's real values, and each provider-dependent field's wrapper names
the providers that use it (``data-providers``) so ``static/js/agent-form.js``
can hide the others' fields without a reload. Hiding is only presentation:
hidden fields are still submitted, and the server's validation
(``agents.models.validate_config``, ``agents.services``) decides what is valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from agents.builtin_tools import BUILTIN_TOOL_CHOICES, END_CALL
from agents.models import ANSWER_TIMINGS, CONFIG_FIELDS, WEBHOOK_EVENT_CHOICES, Agent, RecordingMode
from agents.providers import PROVIDER_DEPENDENT_SETTINGS, PROVIDERS, ProviderInfo, offered_providers
from agents.services import AgentError, check_provider_allowed
from agents.setting_checks import SettingWarning
from orgs.models import Organization
from voiceplatform.redaction import KIND_LABELS


def _org_choices(org: Organization, app_model: str) -> list[tuple[str, str]]:
    """(public id, name) of the org's knowledge bases / MCP servers, when those apps are installed."""
    from django.apps import apps

    try:
        model = apps.get_model(app_model)
    except LookupError:
        return []
    return [(str(pid), name) for pid, name in model.objects.for_org(org).values_list("public_id", "name")]


def clean_provider_choice(value: Any, instance: Agent) -> str:
    """``value`` as a provider an agent form may save: a retired provider only for an
    agent already on it (``agents.services.check_provider_allowed``), as a field error."""
    provider = str(value or "")
    try:
        check_provider_allowed(provider, current=instance.provider if instance.pk else None)
    except AgentError as exc:
        raise forms.ValidationError(str(exc), code=exc.code) from exc
    return provider


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _options_text(entry: dict[str, Any]) -> str:
    """A destination's transfer options as the form writes them (empty for a plain cold one)."""
    options = []
    if entry.get("mode") == "warm":
        options.append("warm")
    if entry.get("confirm"):
        options.append("confirm")
    if entry.get("timeout_s") not in (None, 30):
        options.append(f"timeout {entry['timeout_s']}")
    hours = entry.get("hours")
    if isinstance(hours, dict):
        options.append(f"hours {' '.join(hours.get('days') or _DAYS)} {hours.get('start')}-{hours.get('end')}")
    if entry.get("whisper"):
        options.append(f"whisper: {entry['whisper']}")
    return ", ".join(options)


def _parse_options(text: str, line: int) -> dict[str, Any]:
    """``warm, confirm, timeout 30, hours mon-fri 09:00-17:00, whisper: …`` → entry keys."""
    options: dict[str, Any] = {}
    head, _, whisper = text.partition("whisper:")
    if whisper.strip():
        options["whisper"] = whisper.strip()
    for token in (t.strip() for t in head.split(",")):
        word, _, rest = token.partition(" ")
        if not token:
            continue
        if token in ("warm", "cold"):
            options["mode"] = token
        elif token == "confirm":
            options["confirm"] = True
        elif word == "timeout" and rest.strip().isdigit():
            options["timeout_s"] = int(rest.strip())
        elif word == "hours" and rest.strip():
            *days, span = rest.split()
            start, _, end = span.partition("-")
            options["hours"] = {"days": _day_list(days, line), "start": start, "end": end}
        else:
            raise forms.ValidationError(f"Line {line}: unknown option “{token[:40]}”; use warm, cold, confirm, "
                                        "timeout <seconds>, hours <days> HH:MM-HH:MM, whisper: <text>.")
    return options


def _day_list(words: list[str], line: int) -> list[str]:
    days: list[str] = []
    for word in words or ["mon-sun"]:
        first, _, last = word.lower().partition("-")
        if first[:3] not in _DAYS or (last and last[:3] not in _DAYS):
            raise forms.ValidationError(f"Line {line}: “{word[:20]}” is not a weekday or a range such as mon-fri.")
        span = _DAYS[_DAYS.index(first[:3]):_DAYS.index(last[:3]) + 1] if last else (first[:3],)
        days.extend(d for d in span if d not in days)
    return days


class DestinationsField(forms.CharField):
    """Named numbers, one per line: ``label | number or SIP URI | description | options``.

    Parsed into ``[{"label", "number", "description", …}]``; the model's validation
    (``agents.models.validate_config``) checks and normalises each entry. The options
    (transfer destinations only) are comma-separated: ``warm`` or ``cold``, ``confirm``,
    ``timeout 30``, ``hours mon-fri 09:00-17:00`` and, last, ``whisper: <text>``; they
    round-trip, so editing an agent here keeps what the API set.
    """

    widget = forms.Textarea(attrs={"rows": 3, "placeholder": "Sales | +14155550100 | New orders and quotes | "
                                                             "warm, hours mon-fri 09:00-17:00"})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            lines = []
            for entry in value:
                if not isinstance(entry, dict):
                    continue
                options = _options_text(entry)
                parts = [str(entry.get("label", "")), str(entry.get("number", "")), str(entry.get("description", ""))]
                lines.append(" | ".join([*parts, options] if options else [p for p in parts if p]))
            return "\n".join(lines)
        return value

    def to_python(self, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, list):
            return value
        entries = []
        for number, line in enumerate(str(value or "").splitlines(), start=1):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split("|", 3)]
            if len(parts) < 2:
                raise forms.ValidationError(f"Line {number}: write “name | number or SIP URI | description”.")
            entry: dict[str, Any] = {"label": parts[0], "number": parts[1],
                                     "description": parts[2] if len(parts) > 2 else ""}
            if len(parts) > 3 and parts[3]:
                entry.update(_parse_options(parts[3], number))
            entries.append(entry)
        return entries

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != (initial or [])
        except forms.ValidationError:
            return True


@dataclass(frozen=True)
class Section:
    """A group of fields on the agent form; ``collapsed`` sections start folded."""

    slug: str
    title: str
    intro: str
    fields: tuple[str, ...]
    collapsed: bool = False


#: The form's sections, in order; every setting of ``CONFIG_FIELDS`` is in exactly one.
SECTIONS: tuple[Section, ...] = (
    Section("basics", "Basics", "Who the agent is, which AI runs it and how it sounds.",
            ("name", "provider", "model", "voice", "language")),
    Section("conversation", "Conversation", "What the agent is for and what it says.",
            ("system_prompt", "first_message", "speaks_first", "temperature", "voicemail_message")),
    Section("answering", "Outbound answering", "Who picked up an outbound call, and what the agent does about it.",
            ("answer_detection", "voicemail_action", "screening_identity", "screening_reason", "ivr_goal",
             "answer_silence_s", "answer_deadline_s", "answer_revise_s", "answer_beep_wait_s"),
            collapsed=True),
    Section("tools", "Tools and knowledge", "What the agent can do and look up during a call.",
            ("builtin_tools", "transfer_destinations", "sms_recipients", "knowledge_base_ids", "mcp_server_ids")),
    Section("analysis", "Analysis", "What happens after each call.",
            ("analysis_summary", "success_criteria", "analysis_schema", "webhook_events")),
    Section("advanced", "Advanced", "Call limits, speech detection, privacy and provider options. "
                                    "The defaults suit most agents.",
            ("max_call_duration_s", "silence_timeout_s", "allow_barge_in", "vad_threshold", "min_speech_ms",
             "keep_keypad_digits", "provider_options"), collapsed=True),
    Section("privacy", "Privacy", "Recording consent and which personal data is redacted from what is stored.",
            ("recording_mode", "recording_announcement", "redact_pii", "redact_model_context",
             "redact_webhook_numbers"), collapsed=True),
    Section("video", "Video", "What the agent sees in LiveKit rooms when the caller turns their camera on.",
            ("video_input", "video_fps", "video_max_edge_px"), collapsed=True),
)

#: Field → (label, inline help). Every field of the form has both.
FIELD_TEXT: dict[str, tuple[str, str]] = {
    "name": ("Name", "Shown in the dashboard, call logs and reports; callers never hear it."),
    "provider": ("AI provider", "The service that listens and speaks. The settings below change with it."),
    "model": ("Model", "The provider's speech-to-speech model."),
    "voice": ("Voice", "How the agent sounds."),
    "language": ("Language", "The language callers speak, as a BCP-47 tag such as en-US or es-MX "
                             "(it guides speech recognition)."),
    "system_prompt": ("Instructions (system prompt)",
                      "What the agent is for and how it behaves. Use {{variable}} for call data and "
                      "{{variable|fallback}} for a default when a call does not provide it."),
    "first_message": ("First message", "What the agent says when the call connects (may use {{variables}}). "
                                       "Empty: the agent greets the caller in its own words."),
    "speaks_first": ("Who speaks first", "Whether the agent greets the caller or waits for them to speak."),
    "temperature": ("Temperature (creativity)", "0 to 2: lower is more predictable, higher more varied. "
                                                "Empty: the provider's default."),
    "voicemail_message": ("Voicemail message", "Left when an outbound call reaches an answering machine "
                                               "(may use {{variables}}). Empty: hang up instead."),
    "answer_detection": ("Detect who answers outbound calls",
                         "The agent stays silent until it knows whether a person, voicemail, a call-screening "
                         "assistant, a phone menu or a fax answered (usually 1–5 s), so no AI time is spent on "
                         "machines. Off: the agent greets whoever answers."),
    "voicemail_action": ("On voicemail", "Leave the voicemail message once the beep has sounded, or hang up."),
    "screening_identity": ("Who is calling (for call screening)",
                           "Said when a call-screening assistant (Google Call Screen, iOS) asks, e.g. "
                           "“Sam from Acme Dental”."),
    "screening_reason": ("Why you are calling (for call screening)",
                         "e.g. “about tomorrow's appointment”. The call goes on when the person picks up."),
    "ivr_goal": ("Phone menu goal", "Where the agent should get to when a phone menu answers, e.g. “the billing "
                                    "department”; it presses keys with the Send DTMF tool."),
    "answer_silence_s": (f"{ANSWER_TIMINGS['answer_silence_s'].label} (seconds)",
                         "Nothing heard for this long after the answer: nobody is there and the call is hung up "
                         "(2 to 30 s; default 8)."),
    "answer_deadline_s": (f"{ANSWER_TIMINGS['answer_deadline_s'].label} (seconds)",
                          "Still unsure this long after the first sound: the agent greets a person, since hanging "
                          "up on real people is worse than greeting a machine (2 to 15 s; default 6)."),
    "answer_revise_s": (f"{ANSWER_TIMINGS['answer_revise_s'].label} (seconds)",
                        "For this long after deciding on a person, a beep or mailbox words stop the greeting "
                        "and the voicemail action runs (“Hi, this is Dana… leave a message”). 0 to 10 s; 0: "
                        "never; default 4."),
    "answer_beep_wait_s": (f"{ANSWER_TIMINGS['answer_beep_wait_s'].label} (seconds)",
                           "On voicemail, the message is left after the beep, or after this long if no beep "
                           "comes (5 to 60 s; default 20)."),
    "builtin_tools": ("Built-in tools", "What the agent can do during a call besides talking."),
    "transfer_destinations": ("Transfer destinations",
                              "One per line: name | E.164 number or sip:user@host | when to use it. "
                              "The transfer tool can reach only these (the agent picks by name)."),
    "sms_recipients": ("Extra SMS recipients", "One per line: name | E.164 number | when to use it. "
                                               "Empty: the SMS tool texts only the caller."),
    "knowledge_base_ids": ("Knowledge bases", "Documents the agent can search during a call "
                                              "(with the “Search knowledge bases” tool)."),
    "mcp_server_ids": ("MCP tool servers", "Your MCP servers whose tools the agent may call."),
    "analysis_summary": ("Write a summary after each call", "A few sentences on what the call was about."),
    "success_criteria": ("Success criteria", "How to judge whether a call reached its goal, e.g. "
                                             "“the caller booked an appointment”. Empty: calls are not judged."),
    "analysis_schema": ("Data to extract (JSON Schema)",
                        'Fields to pull out of every call, as a JSON Schema object, e.g. {"type": "object", '
                        '"properties": {"order_id": {"type": "string"}}}. Empty: nothing is extracted.'),
    "webhook_events": ("Webhook events", "Which of this agent's call events reach your webhook endpoints. "
                                         "None ticked: all of them."),
    "max_call_duration_s": ("Maximum call length (seconds)",
                            "The call is ended after this long, whatever is happening (10 s to 4 h)."),
    "silence_timeout_s": ("Hang up after silence (seconds)",
                          "Ends the call when nobody has spoken for this long (3 to 600 s)."),
    "allow_barge_in": ("Callers may interrupt the agent", "Off: the agent finishes each sentence even if "
                                                          "the caller talks over it."),
    "vad_threshold": ("Voice activity threshold",
                      "0 to 1: higher ignores more background noise, lower catches quieter callers."),
    "min_speech_ms": ("Shortest interruption (milliseconds)",
                      "Caller sounds shorter than this (a cough, “uh-huh”) do not interrupt the agent."),
    "keep_keypad_digits": ("Keep the keys callers press", "Stores the digits callers press (PINs, card "
                                                          "numbers) on the timeline and transcript. Off: the "
                                                          "agent still hears them; only their count is stored."),
    "recording_mode": ("Recording", "Off: no audio is ever written. After an announcement: the line below is "
                                    "played first and the recording starts after it."),
    "recording_announcement": ("Recording announcement", "What callers hear before the agent starts, e.g. "
                                                         "“This call is recorded for quality purposes.”"),
    "redact_pii": ("Redact personal data", "Replaced by placeholders such as [PHONE] in stored transcripts, "
                                           "analysis and webhooks. National identifiers follow the "
                                           "organisation's default country."),
    "redact_model_context": ("Redact what the model reads", "Keypad entries and call variables reach the "
                                                            "model redacted too (it cannot repeat them back)."),
    "redact_webhook_numbers": ("Redact numbers in webhooks", "The call's from and to numbers are sent as [PHONE] "
                                                             "in webhook payloads. Off: they are sent as they are, "
                                                             "so your systems can match calls to your records."),
    "video_input": ("Show the agent the caller's video", "In LiveKit rooms, frames of the caller's camera are "
                                                         "sent to the agent so it can see what they show. Off: "
                                                         "the agent never receives video."),
    "video_fps": ("Video frames a second", "How often the agent gets a new picture (0.2 to 5); each one costs "
                                           "input tokens. 1 suits showing a document or a product."),
    "video_max_edge_px": ("Video picture size (pixels)", "Pictures are downscaled so their longest edge is at "
                                                          "most this (128 to 1536)."),
    "provider_options": ("Provider options (JSON)", "Extra settings the provider's connection reads, as a JSON "
                                                    "object. Empty: none."),
}

#: Pickers of the org's own objects → (URL name, text) of the page that creates one, shown when there is none.
CREATE_LINKS: dict[str, tuple[str, str]] = {
    "knowledge_base_ids": ("knowledge:list", "Create a knowledge base"),
    "mcp_server_ids": ("integrations:servers", "Add an MCP server"),
}

#: What a new agent's form starts with, on top of the model's defaults.
NEW_AGENT_INITIAL: dict[str, Any] = {
    "system_prompt": "You are a friendly, concise phone assistant. Answer in one or two short sentences and "
                     "ask one question at a time. When the caller has what they need, say goodbye and end "
                     "the call.",
    "first_message": "Hello! How can I help you today?",
    "builtin_tools": [END_CALL],
}


def providers_using(setting: str) -> list[str]:
    """The providers whose bridge uses ``setting`` (all of them for a provider-independent one)."""
    return [p.name for p in PROVIDERS.values() if p.supports(setting)]


class PickerSelect(forms.Select):
    """A select whose options each name the provider they belong to (``data-provider``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owners: dict[str, str] = {}

    def create_option(self, name: str, value: Any, label: Any, selected: Any, index: int,
                      subindex: int | None = None, attrs: dict[str, Any] | None = None) -> dict[str, Any]:
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        owner = self.owners.get(str(value))
        if owner:
            option["attrs"]["data-provider"] = owner
        return option


def _picker_choices(kind: str, providers: list[ProviderInfo], current_provider: str,
                    current: str) -> tuple[list[Any], dict[str, str]]:
    """Grouped (provider label → values) choices for the model or voice picker, and value → provider.

    The agent's current value is kept even when it is no longer in its provider's
    list (a Hume voice id, a model the vendor dropped), so saving round-trips it
    and the validation names the problem."""
    choices: list[Any] = []
    owners: dict[str, str] = {}
    for info in providers:
        values = list(info.models if kind == "model" else info.voices) if info.supports(kind) else []
        default = info.default_model if kind == "model" else info.default_voice
        if current and info.name == current_provider and current not in values:
            values.append(current)
        options = [(v, f"{v} (default)" if v == default else v) for v in values if v not in owners]
        if options:
            choices.append((info.label, options))
            owners.update({v: info.name for v, _ in options})
    return choices, owners


def default_label(kind: str, info: ProviderInfo | None) -> str:
    """The label of the empty choice: what the provider uses when nothing is picked."""
    default = (info.default_model if kind == "model" else info.default_voice) if info else ""
    return f"Provider default ({default})" if default else "Provider default"


class JSONObjectField(forms.JSONField):
    """A JSON object typed in a textarea: empty (not ``null`` or ``{}``) when unset, pretty-printed otherwise."""

    def prepare_value(self, value: Any) -> Any:
        if value in (None, {}, ""):
            return ""
        if isinstance(value, str):  # the user's own text, e.g. invalid JSON being shown back
            return value
        return super().prepare_value(value)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return {}
        return super().to_python(value)

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return bool(self.to_python(data) != (initial or {}))
        except forms.ValidationError:
            return True


class ProviderField(forms.ChoiceField):
    """Offers only its ``choices`` but accepts any known provider, so that a retired one
    is refused by ``clean_provider`` with the reason instead of "not a valid choice"."""

    def valid_value(self, value: Any) -> bool:
        return str(value) in PROVIDERS


def _timing_input(name: str) -> forms.NumberInput:
    timing = ANSWER_TIMINGS[name]
    return forms.NumberInput(attrs={"min": f"{timing.low:g}", "max": f"{timing.high:g}", "step": "0.5"})


class KeptNumberFields(forms.Form):
    """The optional number settings (video, answer timings), shared by the agent form and the
    admin's: a form that leaves one out (made before the setting existed, or a script posting
    the old fields) keeps the agent's value instead of failing on a required number."""

    instance: Agent

    video_fps = forms.FloatField(required=False, widget=forms.NumberInput(attrs={"step": "0.1"}))
    video_max_edge_px = forms.IntegerField(required=False, widget=forms.NumberInput(attrs={"step": "64"}))
    answer_silence_s = forms.FloatField(required=False, widget=_timing_input("answer_silence_s"))
    answer_deadline_s = forms.FloatField(required=False, widget=_timing_input("answer_deadline_s"))
    answer_revise_s = forms.FloatField(required=False, widget=_timing_input("answer_revise_s"))
    answer_beep_wait_s = forms.FloatField(required=False, widget=_timing_input("answer_beep_wait_s"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in ("video_fps", "video_max_edge_px", *ANSWER_TIMINGS):
            if name not in self.errors and cleaned.get(name) is None:
                cleaned[name] = getattr(self.instance, name)
        return cleaned


class AgentForm(KeptNumberFields, forms.ModelForm):
    provider = ProviderField(widget=forms.Select(attrs={"data-provider-select": ""}))
    model = forms.ChoiceField(required=False, widget=PickerSelect(attrs={"data-picker": "model"}))
    voice = forms.ChoiceField(required=False, widget=PickerSelect(attrs={"data-picker": "voice"}))
    language = forms.CharField(max_length=16, widget=forms.TextInput(attrs={"placeholder": "en-US",
                                                                            "autocomplete": "off"}))
    temperature = forms.FloatField(required=False, widget=forms.NumberInput(
        attrs={"min": "0", "max": "2", "step": "0.1", "data-clear-when-hidden": ""}))
    max_call_duration_s = forms.IntegerField(widget=forms.NumberInput(attrs={"min": "10", "max": "14400",
                                                                             "step": "1"}))
    silence_timeout_s = forms.IntegerField(widget=forms.NumberInput(attrs={"min": "3", "max": "600", "step": "1"}))
    vad_threshold = forms.FloatField(widget=forms.NumberInput(attrs={"min": "0", "max": "1", "step": "0.05"}))
    min_speech_ms = forms.IntegerField(min_value=0, widget=forms.NumberInput(attrs={"min": "0", "step": "10"}))
    builtin_tools = forms.MultipleChoiceField(choices=BUILTIN_TOOL_CHOICES, required=False,
                                              widget=forms.CheckboxSelectMultiple)
    webhook_events = forms.MultipleChoiceField(choices=WEBHOOK_EVENT_CHOICES, required=False,
                                               widget=forms.CheckboxSelectMultiple)
    redact_pii = forms.MultipleChoiceField(choices=list(KIND_LABELS.items()), required=False,
                                           widget=forms.CheckboxSelectMultiple)
    transfer_destinations = DestinationsField(required=False)
    sms_recipients = DestinationsField(
        required=False, widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Manager | +14155550123 | Urgent "
                                                                                "complaints"}))
    knowledge_base_ids = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    mcp_server_ids = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    analysis_schema = JSONObjectField(required=False, widget=forms.Textarea(
        attrs={"rows": 5, "spellcheck": "false", "placeholder": '{"type": "object", "properties": {}}'}))
    provider_options = JSONObjectField(required=False, widget=forms.Textarea(
        attrs={"rows": 3, "spellcheck": "false", "placeholder": "{}"}))
    class Meta:
        model = Agent
        fields = list(CONFIG_FIELDS)
        widgets = {
            "name": forms.TextInput(attrs={"placeholder": "e.g. Front desk", "autocomplete": "off"}),
            "system_prompt": forms.Textarea(attrs={"rows": 8}),
            "first_message": forms.Textarea(attrs={"rows": 2}),
            "voicemail_message": forms.Textarea(attrs={"rows": 2}),
            "success_criteria": forms.Textarea(attrs={"rows": 2}),
            "recording_announcement": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        # Before any bound field is made (a bound field keeps the label it was made with).
        for name, (label, help_text) in FIELD_TEXT.items():
            self.fields[name].label = label
            self.fields[name].help_text = help_text
        adding = self.instance.pk is None
        if adding and not self.is_bound:
            # The model's defaults (a ModelForm made without an instance has none for the
            # fields declared here), then the starter values.
            for name in CONFIG_FIELDS:
                self.initial.setdefault(name, NEW_AGENT_INITIAL.get(name, getattr(self.instance, name)))
        # An existing agent keeps its own provider on offer (even retired, so its form
        # still shows it and it can be switched away); nothing else offers a retired one.
        current_provider = "" if adding else self.instance.provider
        offered = offered_providers(current_provider or None)
        self.fields["provider"].choices = [
            (p.name, f"{p.label} (retired)" if p.retired() else p.label) for p in offered]
        shown_provider = str((self.data.get("provider") if self.is_bound else self.initial.get("provider")) or "")
        for kind in ("model", "voice"):
            current = str(getattr(self.instance, kind) or "")
            choices, owners = _picker_choices(kind, offered, current_provider, current)
            field = self.fields[kind]
            assert isinstance(field, forms.ChoiceField) and isinstance(field.widget, PickerSelect)
            field.choices = [("", default_label(kind, PROVIDERS.get(shown_provider))), *choices]
            field.widget.owners = owners
        self.fields["knowledge_base_ids"].choices = _org_choices(org, "knowledge.KnowledgeBase")
        self.fields["mcp_server_ids"].choices = _org_choices(org, "integrations.McpServer")
        self.fields["provider_options"].help_text = format_html(
            "{} {}", FIELD_TEXT["provider_options"][1], format_html_join(
                " ", '<span data-providers="{}">{} reads: {}.</span>',
                ((p.name, p.label, ", ".join(p.option_keys)) for p in PROVIDERS.values() if p.option_keys)))

    def clean_provider(self) -> str:
        return clean_provider_choice(self.cleaned_data.get("provider"), self.instance)

    def clean_recording_mode(self) -> str:
        return self.cleaned_data.get("recording_mode") or RecordingMode.ON  # left out: recording stays on

    def clean_analysis_schema(self) -> Any:
        return self.cleaned_data.get("analysis_schema") or {}

    def clean_provider_options(self) -> Any:
        return self.cleaned_data.get("provider_options") or {}

    def config_values(self) -> dict[str, Any]:
        """The validated values of the fields the user changed."""
        return {field: self.cleaned_data[field] for field in self.changed_data if field in CONFIG_FIELDS}

    def sections(self, warnings: Sequence[SettingWarning] = ()) -> list[dict[str, Any]]:
        """The sections as the template renders them. Each row: the bound field, the
        providers that use it (``providers``, space-separated; empty: every provider)
        and the ``warnings`` whose first field it is. A section whose fields all
        depend on the provider names the providers that use any of them."""
        out = []
        for section in SECTIONS:
            rows = []
            users: set[str] = set()
            for name in section.fields:
                using = providers_using(name) if name in PROVIDER_DEPENDENT_SETTINGS else []
                users.update(using)
                link = CREATE_LINKS.get(name)
                rows.append({"field": self[name], "providers": " ".join(using),
                             "warnings": [w for w in warnings if w.fields[0] == name],
                             "create_url": reverse(link[0]) if link else "", "create_text": link[1] if link else ""})
            dependent = all(name in PROVIDER_DEPENDENT_SETTINGS for name in section.fields)
            out.append({"section": section, "rows": rows,
                        "providers": " ".join(p for p in PROVIDERS if p in users) if dependent else "",
                        "has_errors": any(self[name].errors for name in section.fields),
                        # A collapsed section opens when something in it needs a look.
                        "open": any(self[name].errors or r["warnings"] for name, r in zip(section.fields, rows,
                                                                                          strict=True))})
        return out


def provider_catalogue() -> dict[str, dict[str, str]]:
    """What the form's script needs per provider (the empty choice's label of each picker)."""
    return {p.name: {"model_default_label": default_label("model", p),
                     "voice_default_label": default_label("voice", p)} for p in PROVIDERS.values()}


class PublishForm(forms.Form):
    note = forms.CharField(max_length=200, required=False)
