"""Agents: an editable draft plus immutable published versions.

The :class:`Agent` row *is* the draft: editing changes it and nothing else.
Publishing freezes the draft's configuration (:data:`CONFIG_FIELDS`) and its tool
grants (``agents.grants``) into a new :class:`AgentVersion`; calls run a published version and record which one.
Restoring copies an old version back into the draft. State changes go through
``agents.services`` (each one recorded in the audit log).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from agents.agent_settings import AgentSettings
from agents.builtin_tools import BUILTIN_TOOL_CHOICES, clean_destinations
from agents.grants import draft_grants, grants_match
from agents.providers import PROVIDER_CHOICES, PROVIDERS
from agents.variables import TemplateSyntaxError, check_syntax
from voiceplatform.models import OrgScopedModel
from voiceplatform.redaction import KIND_LABELS

#: Events an agent's calls can send to the org's webhook endpoints.
WEBHOOK_EVENT_CHOICES: list[tuple[str, str]] = [
    ("call.started", "Call started"),
    ("call.ended", "Call ended"),
    ("call.failed", "Call failed"),
    ("call.transferred", "Call transferred"),
    ("call.analyzed", "Post-call analysis ready"),
]

#: The fields a published version freezes (everything that shapes a call).
CONFIG_FIELDS: tuple[str, ...] = (
    "name", "provider", "model", "voice", "language", "system_prompt", "first_message", "speaks_first",
    "temperature", "max_call_duration_s", "silence_timeout_s", "allow_barge_in", "vad_threshold",
    "min_speech_ms", "voicemail_message", "builtin_tools", "transfer_destinations", "sms_recipients",
    "mcp_server_ids", "knowledge_base_ids",
    "analysis_summary", "analysis_schema", "success_criteria", "webhook_events", "provider_options",
    "keep_keypad_digits", "answer_detection", "voicemail_action", "screening_identity", "screening_reason", "ivr_goal",
    "answer_silence_s", "answer_deadline_s", "answer_revise_s", "answer_beep_wait_s",
    "recording_mode", "recording_announcement", "redact_pii", "redact_model_context", "redact_webhook_numbers",
    "video_input", "video_fps", "video_max_edge_px",
)

#: Bounds of the video settings: a model looking at what a caller holds up needs about a frame a
#: second, and every frame costs input tokens; 1536 px keeps printed text legible.
VIDEO_FPS_RANGE = (0.2, 5.0)
VIDEO_EDGE_RANGE = (128, 1536)


@dataclass(frozen=True)
class AnswerTiming:
    """One timing of outbound answer classification (``calls.media.answer.AnswerTimings``),
    in seconds of the answered line's audio."""

    default: float
    low: float
    high: float
    label: str  # what the form calls it; validation messages name it by this


#: The answer classification's per-agent timings. Bounds: below them real people are taken for
#: empty lines or machines' greetings cut short; above them a machine holds the agent silent too long.
ANSWER_TIMINGS: dict[str, AnswerTiming] = {
    "answer_silence_s": AnswerTiming(8.0, 2.0, 30.0, "Silence before hanging up on an empty line"),
    "answer_deadline_s": AnswerTiming(6.0, 2.0, 15.0, "Undecided time before treating the line as a person"),
    "answer_revise_s": AnswerTiming(4.0, 0.0, 10.0, "Window to take back a person"),
    "answer_beep_wait_s": AnswerTiming(20.0, 5.0, 60.0, "Longest wait for the voicemail beep"),
}


class SpeaksFirst(models.TextChoices):
    """Who talks first once the call connects: the agent's greeting, or silence until the caller speaks."""

    AGENT = "agent", "Agent greets the caller"
    CALLER = "caller", "Wait for the caller"


class VoicemailAction(models.TextChoices):
    """What an outbound call does when answer classification hears an answering machine."""

    LEAVE_MESSAGE = "leave_message", "Leave the voicemail message after the beep"
    HANG_UP = "hang_up", "Hang up"


class RecordingMode(models.TextChoices):
    """Whether the agent's calls are recorded: never, always, or once the caller heard the announcement."""

    OFF = "off", "Do not record"
    ON = "on", "Record"
    AFTER_ANNOUNCEMENT = "after_announcement", "Record after an announcement"


class Agent(OrgScopedModel):
    """An org's voice agent: the editable draft (prompt, voice, provider, tools); calls run a published AgentVersion."""

    name = models.CharField(max_length=120)
    provider = models.CharField(max_length=32, choices=PROVIDER_CHOICES, default="openai_realtime")
    model = models.CharField(max_length=100, blank=True,
                             help_text="Provider model id; empty uses the provider's current default.")
    voice = models.CharField(max_length=100, blank=True, help_text="Empty uses the provider's default voice.")
    language = models.CharField(max_length=16, default="en-US", help_text="BCP-47 tag, e.g. en-US, es-MX.")
    system_prompt = models.TextField(blank=True,
                                     help_text="Instructions. Use {{variable}} for call data, {{name|default}} for a fallback.")
    first_message = models.TextField(blank=True, help_text="What the agent says first (may use {{variables}}).")
    speaks_first = models.CharField(max_length=10, choices=SpeaksFirst.choices, default=SpeaksFirst.AGENT)
    temperature = models.FloatField(null=True, blank=True, help_text="0–2; only for providers that support it.")
    max_call_duration_s = models.PositiveIntegerField(default=600)
    silence_timeout_s = models.PositiveIntegerField(default=30, help_text="Hang up after this much silence.")
    allow_barge_in = models.BooleanField(default=True, help_text="The caller may interrupt the agent.")
    vad_threshold = models.FloatField(default=0.5, help_text="Speech detection sensitivity, 0–1 (higher = less sensitive).")
    min_speech_ms = models.PositiveIntegerField(default=250,
                                                help_text="Caller speech shorter than this does not interrupt.")
    keep_keypad_digits = models.BooleanField(
        default=False, help_text="Keep the keys callers press (PINs, card numbers) on the call's timeline and "
                                 "transcript. Off: the agent still hears them; only their count is stored.")
    # blank reads as "on" (a form or an admin page that leaves it out keeps recording as before)
    recording_mode = models.CharField(max_length=20, choices=RecordingMode.choices, default=RecordingMode.ON,
                                      blank=True)
    recording_announcement = models.TextField(
        blank=True, help_text="Played to the caller before the agent starts when recording waits for an "
                              "announcement; the recording starts after it.")
    redact_pii = models.JSONField(
        default=list, blank=True, help_text="Kinds of personal data replaced by placeholders in stored transcripts, "
                                            "analysis and webhooks (voiceplatform.redaction.KINDS).")
    redact_model_context = models.BooleanField(
        default=False, help_text="Also redact what the model is given as text (keypad entries, call variables).")
    # Off by default: customers match webhook events to their records by the caller's number.
    redact_webhook_numbers = models.BooleanField(
        default=False, help_text="Send the call's from and to numbers as [PHONE] in webhook payloads. Off: they are "
                                 "sent as they are, to match calls to your records.")
    voicemail_message = models.TextField(blank=True, help_text="Left when an answering machine picks up; empty hangs up.")
    # LiveKit rooms: the caller's camera shown to the agent (calls.media.video_frames); off by default.
    video_input = models.BooleanField(
        "show the caller's video", default=False, help_text="In LiveKit rooms, show the agent what the caller's camera sees (providers that "
                                 "take images: Gemini Live).")
    video_fps = models.FloatField("video frames a second", default=1.0, help_text="Camera frames a second sent to the agent (0.2 to 5).")
    video_max_edge_px = models.PositiveIntegerField(
        "video picture size (px)", default=512, help_text="Frames are downscaled so their longest edge is at most this many pixels (128 to 1536).")
    # Outbound answer classification (calls.media.answer_gate).
    answer_detection = models.BooleanField(
        default=False, help_text="On outbound calls, find out who answered (a person, voicemail, call screening, a "
                                 "phone menu, a fax, nobody) before the agent speaks.")
    voicemail_action = models.CharField(max_length=16, choices=VoicemailAction.choices,
                                        default=VoicemailAction.LEAVE_MESSAGE)
    screening_identity = models.CharField(max_length=200, blank=True,
                                          help_text="Who is calling, said to a call-screening assistant.")
    screening_reason = models.CharField(max_length=300, blank=True,
                                        help_text="Why, said to a call-screening assistant.")
    ivr_goal = models.CharField(max_length=500, blank=True,
                                help_text="Where to get to when a phone menu answers, e.g. the billing department.")
    answer_silence_s = models.FloatField(
        default=ANSWER_TIMINGS["answer_silence_s"].default,
        help_text="Seconds of silence after the answer before the line counts as nobody there (2 to 30).")
    answer_deadline_s = models.FloatField(
        default=ANSWER_TIMINGS["answer_deadline_s"].default,
        help_text="Seconds after the first sound that an undecided line is treated as a person (2 to 15).")
    answer_revise_s = models.FloatField(
        default=ANSWER_TIMINGS["answer_revise_s"].default,
        help_text="Seconds after deciding on a person that a beep or mailbox words still turn it into voicemail "
                  "(0 to 10; 0: never).")
    answer_beep_wait_s = models.FloatField(
        default=ANSWER_TIMINGS["answer_beep_wait_s"].default,
        help_text="Voicemail: seconds to wait for the beep before leaving the message anyway (5 to 60).")
    builtin_tools = models.JSONField(default=list, blank=True)
    # The only places the agent's tools may transfer a call to / text besides the caller:
    # [{"label", "number", "description"}]; the model picks by label (agents.builtin_tools).
    transfer_destinations = models.JSONField(
        default=list, blank=True,
        help_text="Where the transfer tool may send the caller: a name, an E.164 number or SIP URI, and an "
                  "optional description for the model. No destinations: the transfer tool is not offered.")
    sms_recipients = models.JSONField(
        default=list, blank=True,
        help_text="Who the SMS tool may text besides the caller (name, E.164 number, description). "
                  "Empty: only the other party of the call.")
    # Wired up by the integrations and knowledge apps; stored as their public ids.
    mcp_server_ids = models.JSONField(default=list, blank=True)
    knowledge_base_ids = models.JSONField(default=list, blank=True)
    analysis_summary = models.BooleanField(default=True, help_text="Write a summary after each call.")
    analysis_schema = models.JSONField(default=dict, blank=True,
                                       help_text="JSON Schema (type object) of fields to extract after each call.")
    success_criteria = models.TextField(blank=True, help_text="How to judge whether a call succeeded.")
    webhook_events = models.JSONField(default=list, blank=True)
    provider_options = models.JSONField(default=dict, blank=True,
                                        help_text='Provider-specific settings, e.g. {"config_id": "…"} for Hume.')
    published_version = models.ForeignKey("AgentVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="+")

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["org", "name"])]

    def __str__(self) -> str:
        return self.name

    # -- configuration -----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The draft's configuration as a JSON-able dict (what a version stores)."""
        return {field: getattr(self, field) for field in CONFIG_FIELDS}

    def apply_snapshot(self, config: dict[str, Any]) -> None:
        """Set the draft from a version's configuration (fields unknown to it keep their value)."""
        for field in CONFIG_FIELDS:
            if field in config:
                setattr(self, field, config[field])

    @property
    def has_unpublished_changes(self) -> bool:
        """True when the draft (its settings or its tool grants) differs from the published
        version, or nothing is published yet."""
        version = self.published_version
        return (version is None or not config_matches(version.config, self.snapshot())
                or not grants_match(version, draft_grants(self)))

    @property
    def credential_provider(self) -> str | None:
        """The ProviderCredential provider this agent's AI provider needs, or None if it needs none (echo)."""
        info = PROVIDERS.get(self.provider)
        return info.credential if info else None

    def clean(self) -> None:
        """Validate the draft as publishing would; raises ValidationError keyed by field."""
        self.recording_mode = self.recording_mode or RecordingMode.ON
        errors = validate_config(self.snapshot())
        if errors:
            raise ValidationError(errors)
        # Stored normalised (E.164, lower-case SIP scheme, trimmed labels).
        self.transfer_destinations = clean_destinations(self.transfer_destinations, allow_sip=True)[0]
        self.sms_recipients = clean_destinations(self.sms_recipients, allow_sip=False)[0]


def config_matches(version_config: dict[str, Any], snapshot: dict[str, Any]) -> bool:
    """True if a version stores ``snapshot``; a setting added after the version was
    published counts as equal while the draft keeps that setting's default."""
    for field in CONFIG_FIELDS:
        if field in version_config:
            if version_config[field] != snapshot.get(field):
                return False
        elif snapshot.get(field) != Agent._meta.get_field(field).get_default():
            return False
    return True


class VersionImmutable(Exception):
    """A published version was about to be changed."""


class AgentVersion(OrgScopedModel):
    """A frozen copy of an agent's configuration. Never changed after it is saved."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    config = models.JSONField()
    note = models.CharField(max_length=200, blank=True)
    published_by = models.CharField(max_length=200, blank=True, help_text="Who published it, as shown at the time.")
    # The draft's tool grants when it was published (agents.grants); calls of this version
    # are offered exactly these. Null: published before grants were versioned.
    tool_grants = models.JSONField(
        null=True, blank=True, editable=False,
        help_text='The tools this version may call: {"http_tools": [tool ids], "mcp_tools": {server id: [tool '
                  'names]}} (a server not listed offers all its tools). Null: published before grants were '
                  "versioned; its calls use the agent's current grants.")

    class Meta:
        ordering = ["agent", "-number"]
        constraints = [models.UniqueConstraint(fields=["agent", "number"], name="agent_version_number_unique")]

    def __str__(self) -> str:
        return f"{self.agent.name} v{self.number}"

    @cached_property
    def settings(self) -> AgentSettings:
        """The version's configuration, parsed once into its typed form (every reader uses
        this, never ``config.get``: see ``agents.agent_settings``)."""
        return AgentSettings.parse(self.config)

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Insert only: a published version is immutable and raises VersionImmutable on any update."""
        if not self._state.adding:
            raise VersionImmutable(f"{self} is published and cannot be changed; publish a new version instead")
        super().save(*args, **kwargs)


# -- validation shared by the model, the dashboard form and the API --------------------

_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def validate_config(config: dict[str, Any]) -> dict[str, list[str]]:
    """Field → messages for everything wrong with an agent configuration."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    provider = config.get("provider")
    info = PROVIDERS.get(provider or "")
    if info is None:
        add("provider", f"Unknown provider “{provider}”; choose one of: {', '.join(PROVIDERS)}.")
    else:
        voice = config.get("voice") or ""
        if voice and not info.voice_ok(voice):
            if info.voices:
                add("voice", f"{info.label} has no voice “{voice}”. Available: {', '.join(info.voices)}.")
            else:
                add("voice", f"{info.label} voices are given by their voice id (a UUID from the voice "
                             f"library); “{voice}” is not one.")
        model = config.get("model") or ""
        if model and model not in info.models:
            if info.models:
                add("model", f"{info.label} has no model “{model}”. Available: {', '.join(info.models)}.")
            else:
                add("model", info.model_note or f"{info.label} takes no model id; leave it empty.")
        if config.get("temperature") is not None and not info.supports_temperature:
            add("temperature", f"{info.label} does not take a temperature; leave it empty.")
        if config.get("video_input") and not info.supports("video_input"):
            add("video_input", f"{info.label} takes no images during a call, so it cannot be shown the caller's "
                               f"video; turn video off or choose Gemini Live.")
    if not _LANGUAGE.match(config.get("language") or ""):
        add("language", f"“{config.get('language')}” is not a BCP-47 language tag such as en-US or es-MX.")
    temperature = config.get("temperature")
    if temperature is not None and not 0 <= float(temperature) <= 2:
        add("temperature", "Temperature must be between 0 and 2.")
    vad = config.get("vad_threshold")
    if vad is not None and not 0 <= float(vad) <= 1:
        add("vad_threshold", "The speech detection threshold must be between 0 and 1.")
    for field in ("system_prompt", "first_message", "voicemail_message"):
        try:
            check_syntax(config.get(field) or "")
        except TemplateSyntaxError as exc:
            add(field, str(exc)[0].upper() + str(exc)[1:] + ".")
    fps, edge = config.get("video_fps"), config.get("video_max_edge_px")
    if fps is not None and not VIDEO_FPS_RANGE[0] <= float(fps) <= VIDEO_FPS_RANGE[1]:
        add("video_fps", f"Video frames a second must be between {VIDEO_FPS_RANGE[0]:g} and {VIDEO_FPS_RANGE[1]:g}.")
    if edge is not None and not VIDEO_EDGE_RANGE[0] <= int(edge) <= VIDEO_EDGE_RANGE[1]:
        add("video_max_edge_px", f"The video frame's longest edge must be between {VIDEO_EDGE_RANGE[0]} and "
                                 f"{VIDEO_EDGE_RANGE[1]} pixels.")
    for field, timing in ANSWER_TIMINGS.items():
        value = config.get(field)
        if value is not None and not timing.low <= float(value) <= timing.high:
            add(field, f"{timing.label} must be between {timing.low:g} and {timing.high:g} seconds, not {float(value):g}.")
    duration = config.get("max_call_duration_s")
    if duration is not None and not 10 <= int(duration) <= 4 * 3600:
        add("max_call_duration_s", "Maximum call duration must be between 10 seconds and 4 hours.")
    silence = config.get("silence_timeout_s")
    if silence is not None and not 3 <= int(silence) <= 600:
        add("silence_timeout_s", "Silence timeout must be between 3 and 600 seconds.")
    _check_choice_list(config, "builtin_tools", dict(BUILTIN_TOOL_CHOICES), add)
    _check_choice_list(config, "webhook_events", dict(WEBHOOK_EVENT_CHOICES), add)
    _check_choice_list(config, "redact_pii", KIND_LABELS, add)
    mode = config.get("recording_mode") or RecordingMode.ON
    if mode not in RecordingMode.values:
        add("recording_mode", f"“{mode}” is not a recording mode; choose one of: {', '.join(RecordingMode.values)}.")
    elif mode == RecordingMode.AFTER_ANNOUNCEMENT and not (config.get("recording_announcement") or "").strip():
        add("recording_announcement", "Recording after an announcement needs the announcement's text.")
    for field, allow_sip in (("transfer_destinations", True), ("sms_recipients", False)):
        for message in clean_destinations(config.get(field), allow_sip=allow_sip)[1]:
            add(field, message)
    for field in ("mcp_server_ids", "knowledge_base_ids"):
        value = config.get(field)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            add(field, "Must be a list of ids.")
    schema = config.get("analysis_schema")
    if schema:
        if not isinstance(schema, dict) or schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
            add("analysis_schema", 'Must be a JSON Schema object: {"type": "object", "properties": {…}}.')
        else:
            for key, prop in schema["properties"].items():
                if not isinstance(prop, dict) or "type" not in prop:
                    add("analysis_schema", f"Property “{key}” needs a \"type\".")
            for ref in _remote_refs(schema):
                add("analysis_schema", f"“$ref”: {ref[:100]!r} points outside the schema; only local "
                                       "references (\"#/…\") are allowed (nothing is ever fetched).")
    if not isinstance(config.get("provider_options"), dict):
        add("provider_options", "Must be a JSON object.")
    return errors


def _remote_refs(node: Any) -> list[str]:
    """Every ``$ref`` in a JSON Schema that does not point inside it."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and not value.startswith("#"):
                found.append(value)
            else:
                found.extend(_remote_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_remote_refs(item))
    return found


def _check_choice_list(config: dict[str, Any], field: str, choices: dict[str, str], add: Any) -> None:
    value = config.get(field)
    if not isinstance(value, list):
        add(field, "Must be a list.")
        return
    unknown = [v for v in value if v not in choices]
    if unknown:
        add(field, f"Unknown: {', '.join(map(str, unknown))}. Choose from: {', '.join(choices)}.")


# -- experiments (A/B tests of published versions; verbs in agents.experiments.services) ----

class ExperimentState(models.TextChoices):
    """An experiment's lifecycle, forward only: draft → running → ended."""

    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    ENDED = "ended", "Ended"


class Experiment(OrgScopedModel):
    """An A/B test of an agent: while running, new calls of the agent are split between
    the arms' published versions by weight (sticky per caller, see
    ``agents.experiments.assignment``). At most one experiment per agent runs at a time."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=120)
    hypothesis = models.TextField(blank=True, help_text="What you expect the change to do, in a sentence.")
    state = models.CharField(max_length=10, choices=ExperimentState.choices, default=ExperimentState.DRAFT)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    winner = models.ForeignKey("ExperimentArm", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["agent"], condition=models.Q(state="running"),
                                    name="one_running_experiment_per_agent"),
        ]

    def __str__(self) -> str:
        return self.name


class ExperimentArm(OrgScopedModel):
    """One arm of an experiment: a published version and its share of the traffic
    (weight / sum of the arms' weights). ``label`` is A, B, C…; A is the control."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    label = models.CharField(max_length=2)
    # Versions are deleted only with their agent, whose experiments go with it.
    version = models.ForeignKey(AgentVersion, on_delete=models.CASCADE, related_name="experiment_arms")
    weight = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["experiment", "label"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "label"], name="experiment_arm_label_unique"),
            models.UniqueConstraint(fields=["experiment", "version"], name="experiment_arm_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.label}: v{self.version.number}" if self.version_id else self.label
