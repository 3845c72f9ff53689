"""Agent tests: suites of scenarios played by a simulated caller, and their runs.

Suite → Scenario (what a simulated caller wants, and how success is decided);
SuiteRun → ScenarioRun (one simulated call each, with everything it produced).

States (every transition lives in ``simulations.services`` / ``simulations.runner``):

SuiteRun:     queued → running → passed | failed | error
ScenarioRun:  queued → running → passed | failed | error

``error`` means the run could not be judged (the agent or the caller's provider failed,
the judge could not be reached): it is never counted as a pass.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from voiceplatform.models import OrgScopedModel


class RunStatus(models.TextChoices):
    """Where a suite or scenario run stands; PASSED/FAILED/ERROR are final."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERROR = "error", "Error"


FINAL = frozenset({RunStatus.PASSED, RunStatus.FAILED, RunStatus.ERROR})


class CallerProvider(models.TextChoices):
    """Which realtime provider plays the simulated caller (with the org's own credential)."""

    OPENAI = "openai_realtime", "OpenAI Realtime"
    GEMINI = "gemini_live", "Gemini Live"


class Mode(models.TextChoices):
    """How the two sides talk: real-time audio (as on a call) or text (fast and cheap)."""

    VOICE = "voice", "Voice"
    TEXT = "text", "Text"


class Suite(OrgScopedModel):
    """A named set of scenarios for one agent."""

    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="test_suites")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    concurrency = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="How many scenarios run at the same time.")
    required_for_publish = models.BooleanField(
        default=False, help_text="Publishing the agent needs a passing run of this suite on the draft as it is.")

    class Meta:
        ordering = ["agent", "name"]
        constraints = [models.UniqueConstraint(fields=["agent", "name"], name="suite_name_unique_per_agent")]

    def __str__(self) -> str:
        return self.name


class Scenario(OrgScopedModel):
    """One simulated call: who calls, what they want, and how the call is judged.

    ``checks``: platform-evaluated checks (``simulations.checks``); ``rubric``: criteria
    for the LLM judge, each scored pass/fail with a quote; ``tool_stubs``: tool name →
    the response returned instead of running the tool (side effects off).
    """

    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="scenarios")
    name = models.CharField(max_length=120)
    persona = models.TextField(help_text="Who the caller is, how they speak, what they know, how patient they are.")
    goal = models.TextField(help_text="What the caller wants from the call.")
    opening_line = models.TextField(blank=True, help_text="What the caller says first (empty: wait for the agent).")
    variables = models.JSONField(default=dict, blank=True, help_text="Variables the call starts with.")
    caller_provider = models.CharField(max_length=32, choices=CallerProvider.choices, default=CallerProvider.OPENAI)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.VOICE,
                            help_text="Text: both sides through the providers' text replies "
                                      "(OpenAI Realtime or Gemini Live).")
    max_turns = models.PositiveSmallIntegerField(default=12, validators=[MinValueValidator(1),
                                                                         MaxValueValidator(100)])
    max_seconds = models.PositiveIntegerField(default=120, validators=[MinValueValidator(5),
                                                                       MaxValueValidator(1800)])
    checks = models.JSONField(default=list, blank=True)
    rubric = models.JSONField(default=list, blank=True)
    tool_stubs = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["suite", "name"]
        constraints = [models.UniqueConstraint(fields=["suite", "name"], name="scenario_name_unique_per_suite")]

    def __str__(self) -> str:
        return self.name


class SuiteRun(OrgScopedModel):
    """One run of a suite against a published version (``agent_version``) or the draft
    (``agent_version`` empty; ``config`` keeps the draft as it was run)."""

    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="runs")
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="+")
    agent_version = models.ForeignKey("agents.AgentVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    config = models.JSONField(default=dict, help_text="The agent configuration the run tested.")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    concurrency = models.PositiveSmallIntegerField(default=2)
    total = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errored = models.PositiveIntegerField(default=0)
    estimated_cost = models.DecimalField(max_digits=12, decimal_places=5, null=True, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=5, null=True, blank=True)
    requested_by = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.suite} on {self.version_label}"

    @property
    def version_label(self) -> str:
        """What was tested: "version N" or "draft"."""
        return f"version {self.agent_version.number}" if self.agent_version is not None else "draft"

    @property
    def done(self) -> int:
        """Scenario runs finished so far."""
        return self.passed + self.failed + self.errored

    @property
    def pass_rate(self) -> float | None:
        """Passed over finished (None before any has finished)."""
        return self.passed / self.done if self.done else None


class ScenarioRun(OrgScopedModel):
    """One simulated call of a suite run, with everything it produced."""

    suite_run = models.ForeignKey(SuiteRun, on_delete=models.CASCADE, related_name="scenario_runs")
    scenario = models.ForeignKey(Scenario, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    scenario_name = models.CharField(max_length=120)
    spec = models.JSONField(default=dict, help_text="The scenario as it was run.")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    transcript = models.JSONField(default=list, blank=True)
    timeline = models.JSONField(default=list, blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    check_results = models.JSONField(default=list, blank=True)
    verdicts = models.JSONField(default=list, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=5, null=True, blank=True)
    recording = models.FileField(upload_to="simulations/%Y/%m/", blank=True)
    end_reason = models.CharField(max_length=40, blank=True)
    ended_by = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    first_audio_ms = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["suite_run", "scenario_name", "created_at"]

    def __str__(self) -> str:
        return self.scenario_name
