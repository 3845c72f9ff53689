"""Batch campaigns, their rows, the do-not-call list and scheduled calls.

State machines (every transition lives in ``batches.services`` / ``batches.dispatch``):

Batch:  ready → running ⇄ paused → completed | canceled   (ready → canceled too)

BatchEntry (one per data row of the upload, never deleted):
    invalid | duplicate | do_not_call          classified at import, never dialled
    pending → dialing → in_call → done | failed
                 ↑__________________|  (retry: back to pending with next_attempt_at)
    pending/dialing(never placed) → canceled  (batch canceled)

``dialing`` is the database claim taken before the carrier is asked to dial
(``select_for_update(skip_locked=True)``); the call's idempotency key is derived
from the entry and the attempt number, so a redelivered task cannot dial twice.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from voiceplatform.models import OrgScopedModel, TimestampedModel


class BatchStatus(models.TextChoices):
    """A batch's lifecycle: ready → running ⇄ paused → completed, or canceled from any live state."""

    READY = "ready", "Ready"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    CANCELED = "canceled", "Canceled"


class EntryState(models.TextChoices):
    """Where one row of a batch stands: refused at import (invalid, duplicate, do-not-call) or on its way through
    dialling to done/failed."""

    INVALID = "invalid", "Invalid"
    DUPLICATE = "duplicate", "Duplicate"
    DO_NOT_CALL = "do_not_call", "Do not call"
    PENDING = "pending", "Pending"
    DIALING = "dialing", "Dialing"
    IN_CALL = "in_call", "In call"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


NOT_DIALLED = frozenset({EntryState.INVALID, EntryState.DUPLICATE, EntryState.DO_NOT_CALL})
ACTIVE = frozenset({EntryState.DIALING, EntryState.IN_CALL})
FINISHED = frozenset({EntryState.DONE, EntryState.FAILED, EntryState.CANCELED}) | NOT_DIALLED


class Outcome(models.TextChoices):
    """How a row's last call ended, as a campaign reports it; RETRYABLE_OUTCOMES are dialled again."""

    COMPLETED = "completed", "Completed"
    BUSY = "busy", "Busy"
    NO_ANSWER = "no_answer", "No answer"
    FAILED = "failed", "Failed"
    VOICEMAIL = "voicemail", "Voicemail"
    CANCELED = "canceled", "Canceled"


RETRYABLE_OUTCOMES = (Outcome.BUSY, Outcome.NO_ANSWER, Outcome.FAILED, Outcome.VOICEMAIL)


def default_retry_on() -> list[str]:
    """The outcomes retried unless a batch says otherwise (a fresh list per row: a JSON default must not be shared)."""
    return [o.value for o in RETRYABLE_OUTCOMES]


class Batch(OrgScopedModel):
    """An outbound campaign: rows from a CSV/JSON upload dialled from one number with one agent, within its concurrency,
    calls-per-second and calling-window limits."""

    name = models.CharField(max_length=200)
    agent = models.ForeignKey("agents.Agent", on_delete=models.PROTECT, related_name="batches")
    from_number = models.ForeignKey("calls.PhoneNumber", on_delete=models.PROTECT, related_name="batches")
    status = models.CharField(max_length=10, choices=BatchStatus.choices, default=BatchStatus.READY, db_index=True)

    concurrency = models.PositiveIntegerField(default=5, help_text="Calls of this batch live at once.")
    calls_per_second = models.FloatField(default=1.0, help_text="New calls started per second, at most.")
    max_attempts = models.PositiveIntegerField(default=3, help_text="Dial attempts per row, the first included.")
    retry_delay_s = models.PositiveIntegerField(default=600, help_text="Wait before retrying a row.")
    retry_on = models.JSONField(default=default_retry_on, blank=True,
                                help_text="Outcomes that are retried: busy, no_answer, failed, voicemail.")
    calling_window = models.JSONField(
        null=True, blank=True,
        help_text='Callee-local days and hours, e.g. {"days": ["mon","tue"], "start": "09:00", "end": "20:00"}.',
    )

    source_filename = models.CharField(max_length=255, blank=True)
    # A legal hold: the retention purge leaves this campaign's rows and calls alone.
    legal_hold = models.BooleanField(default=False)
    source_format = models.CharField(max_length=10, blank=True)
    source_encoding = models.CharField(max_length=20, blank=True)
    source_delimiter = models.CharField(max_length=4, blank=True)
    phone_column = models.CharField(max_length=200, blank=True)
    variable_columns = models.JSONField(default=dict, blank=True, help_text="Column → variable name.")
    # Import totals (fixed once the rows are stored): rows = valid + invalid + duplicate + do_not_call.
    total_rows = models.PositiveIntegerField(default=0)
    valid_rows = models.PositiveIntegerField(default=0)
    invalid_rows = models.PositiveIntegerField(default=0)
    duplicate_rows = models.PositiveIntegerField(default=0)
    do_not_call_rows = models.PositiveIntegerField(default=0)
    blank_rows = models.PositiveIntegerField(default=0)

    launched_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Earliest moment the next call may start (calls-per-second), kept on the row so
    # every worker honours one shared limit under the batch's row lock.
    next_dial_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return self.name


class BatchEntry(OrgScopedModel):
    """One row of a batch: the number as written and as E.164, its template variables, its state and the
    attempts made."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="entries")
    row_number = models.PositiveIntegerField()
    raw_phone = models.CharField(max_length=200, blank=True)
    e164 = models.CharField(max_length=16, blank=True)
    variables = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=12, choices=EntryState.choices, db_index=True)
    reason = models.TextField(blank=True)
    duplicate_of = models.PositiveIntegerField(null=True, blank=True)

    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)
    last_call = models.ForeignKey("calls.Call", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["row_number"]
        verbose_name_plural = "batch entries"
        constraints = [models.UniqueConstraint(fields=["batch", "row_number"], name="batch_entry_row_unique")]
        indexes = [
            models.Index(fields=["batch", "state", "next_attempt_at"], name="batch_entry_due"),
        ]

    def __str__(self) -> str:
        return f"row {self.row_number}"

    @property
    def idempotency_key(self) -> str:
        """The call idempotency key of this row's current attempt: a retried dispatch finds the call it
        already placed."""
        return f"batch:{self.public_id}:{self.attempts}"


class BatchCallAttempt(TimestampedModel):
    """One dial of one row: which call it made and how it ended."""

    entry = models.ForeignKey(BatchEntry, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    call = models.ForeignKey("calls.Call", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["entry", "number"]
        constraints = [models.UniqueConstraint(fields=["entry", "number"], name="batch_attempt_unique")]


class DoNotCallNumber(OrgScopedModel):
    """A number the org must never call; every outbound path (API, batch, schedule) checks it before dialling."""

    e164 = models.CharField("number", max_length=16)
    reason = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=20, default="manual")

    class Meta:
        ordering = ["e164"]
        verbose_name = "do-not-call number"
        constraints = [models.UniqueConstraint(fields=["org", "e164"], name="dnc_unique_per_org")]

    def __str__(self) -> str:
        return self.e164


class ScheduleKind(models.TextChoices):
    """A scheduled call runs once at a time or repeatedly on a cron expression."""

    ONE_TIME = "one_time", "One time"
    CRON = "cron", "Recurring (cron)"


class MissedRunPolicy(models.TextChoices):
    """What happens to runs that fell due while the scheduler was down."""

    RUN_ONCE = "run_once", "Run once when the scheduler is back"
    SKIP = "skip", "Skip and record it as missed"


class ScheduledCall(OrgScopedModel):
    """A call the org has scheduled: one time or cron, in a timezone, with retries; beat dispatches its runs."""

    name = models.CharField(max_length=200)
    agent = models.ForeignKey("agents.Agent", on_delete=models.PROTECT, related_name="scheduled_calls")
    from_number = models.ForeignKey("calls.PhoneNumber", on_delete=models.PROTECT, related_name="scheduled_calls")
    to = models.CharField(max_length=16, help_text="E.164")
    variables = models.JSONField(default=dict, blank=True)
    kind = models.CharField(max_length=10, choices=ScheduleKind.choices)
    run_at = models.DateTimeField(null=True, blank=True, help_text="One-time calls: when (stored in UTC).")
    cron = models.CharField(max_length=120, blank=True, help_text="Recurring calls: minute hour day month weekday.")
    timezone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    max_attempts = models.PositiveIntegerField(default=1)
    retry_delay_s = models.PositiveIntegerField(default=300)
    missed_run_policy = models.CharField(max_length=10, choices=MissedRunPolicy.choices,
                                         default=MissedRunPolicy.RUN_ONCE)
    periodic_task = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+", editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="one_time", run_at__isnull=False) | Q(kind="cron") & ~Q(cron="")),
                name="scheduled_call_has_time",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RunState(models.TextChoices):
    """Where one run of a scheduled call stands, from dialling to done, failed or missed."""

    DIALING = "dialing", "Dialing"
    IN_CALL = "in_call", "In call"
    RETRY_WAIT = "retry_wait", "Waiting to retry"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    MISSED = "missed", "Missed (scheduler was down)"


class ScheduledCallRun(TimestampedModel):
    """One firing of a schedule. Unique per (schedule, due time), so a fire task
    delivered twice finds the run already there."""

    scheduled_call = models.ForeignKey(ScheduledCall, on_delete=models.CASCADE, related_name="runs")
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    due_at = models.DateTimeField(help_text="The run time the schedule called for.")
    fired_at = models.DateTimeField()
    state = models.CharField(max_length=12, choices=RunState.choices)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    call = models.ForeignKey("calls.Call", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-due_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["scheduled_call", "due_at"], name="scheduled_run_unique")]

    def __str__(self) -> str:
        return f"{self.scheduled_call} @ {self.due_at:%Y-%m-%d %H:%M}"

    @property
    def idempotency_key(self) -> str:
        """The call idempotency key of this run's current attempt: due time and attempt number, so each is
        placed once."""
        return f"sched:{self.scheduled_call.public_id}:{int(self.due_at.timestamp())}:{self.attempts}"
