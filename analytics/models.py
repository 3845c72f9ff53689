"""Analytics rollups: one contribution row per ended call, summed into daily rollups.

Two tables, one rule: a rollup row is always *recomputed* from the contribution rows
(``CallFact``) of its key, never incremented. That makes every writer idempotent:

- ``CallFact`` is keyed by the call (one row per call, replaced whenever the call
  changes: it ends, the session's result, the analysis or a cost arrives late), so a
  call is counted once however often it is reported;
- ``DailyRollup`` holds, per org, day in the org's timezone and the dimensions the
  dashboard filters by, the sums and fixed-bucket histograms of those facts; the
  writer recomputes the keys a changed fact left and entered, under a per-(org, day)
  advisory lock (``analytics.rollups``).

Dimension ids (agent, version, campaign, number) are the internal integer keys held
as plain integers, 0 for "none": a deleted agent's calls stay in the org's totals and
the unique key needs no NULL handling. They never leave the database: the service
turns them into public ids.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models

# Fixed histogram bucket upper edges (a value v falls in the first bucket whose edge is
# >= v; values above the last edge fall in one overflow bucket). Changing them needs a
# rebuild of every rollup (``manage.py rebuild_analytics``).
DURATION_EDGES_S: tuple[int, ...] = (
    5, 10, 15, 20, 30, 45, 60, 75, 90, 120, 150, 180, 240, 300, 420, 600, 900, 1200, 1800, 2700, 3600,
)
LATENCY_EDGES_MS: tuple[int, ...] = (
    100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1400, 1600, 1800, 2000, 2500, 3000,
    4000, 5000, 7500, 10000,
)
DURATION_BUCKETS = len(DURATION_EDGES_S) + 1
LATENCY_BUCKETS = len(LATENCY_EDGES_MS) + 1

#: The dimensions of a rollup row (besides org and day), in key order.
KEY_FIELDS: tuple[str, ...] = (
    "agent_id", "version_id", "direction", "batch_id", "number_id", "carrier", "outcome", "provider", "model",
    "currency",
)

#: The dimensions ``DayTotal`` keeps (the rest are summed over).
TOTAL_KEY_FIELDS: tuple[str, ...] = ("carrier", "outcome", "provider", "model", "currency")


class CallFact(models.Model):
    """What one ended call contributes to the rollups (replaced, never added to)."""

    call = models.OneToOneField("calls.Call", primary_key=True, on_delete=models.CASCADE, related_name="+")
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()  # created_at's date in the org's timezone when the fact was computed
    hour = models.PositiveSmallIntegerField()  # created_at's hour there (0-23)

    agent_id = models.BigIntegerField(default=0)
    version_id = models.BigIntegerField(default=0)
    direction = models.CharField(max_length=10)
    batch_id = models.BigIntegerField(default=0)
    number_id = models.BigIntegerField(default=0)
    carrier = models.CharField(max_length=10, blank=True)
    outcome = models.CharField(max_length=12)  # the call's final status
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=64, blank=True)
    currency = models.CharField(max_length=3, blank=True)  # of the carrier cost

    answered = models.BooleanField(default=False)
    answered_by = models.CharField(max_length=10, blank=True)
    # who answered per the session's answer classification (calls.AnswerOutcome); empty: not classified
    answered_as = models.CharField(max_length=10, blank=True)
    duration_s = models.PositiveIntegerField(null=True)
    first_audio_ms = models.IntegerField(null=True)
    turn_latencies_ms = ArrayField(models.FloatField(), default=list)
    barge_ins = models.PositiveIntegerField(default=0)
    transferred = models.BooleanField(default=False)
    tool_calls = models.PositiveIntegerField(default=0)
    tool_errors = models.PositiveIntegerField(default=0)
    success = models.BooleanField(null=True)  # post-call analysis verdict; None: not analysed
    end_reason = models.CharField(max_length=64, blank=True)
    provider_cost = models.DecimalField(max_digits=12, decimal_places=5, null=True)
    carrier_cost = models.DecimalField(max_digits=12, decimal_places=5, null=True)
    # every cost that applies to the call is known (the carrier's arrives after the end)
    cost_complete = models.BooleanField(default=False)
    concurrent_at_start = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["org", "day"], name="analytics_fact_org_day")]

    def __str__(self) -> str:
        return f"fact of call {self.call_id}"


class RollupFigures(models.Model):
    """The sums a rollup row holds (the key is the subclass's)."""

    calls = models.PositiveIntegerField(default=0)
    answered = models.PositiveIntegerField(default=0)
    human = models.PositiveIntegerField(default=0)
    machine = models.PositiveIntegerField(default=0)
    duration_sum_s = models.BigIntegerField(default=0)
    duration_hist = ArrayField(models.IntegerField(), size=DURATION_BUCKETS)
    first_audio_hist = ArrayField(models.IntegerField(), size=LATENCY_BUCKETS)
    turn_latency_hist = ArrayField(models.IntegerField(), size=LATENCY_BUCKETS)
    barge_ins = models.PositiveIntegerField(default=0)
    transfers = models.PositiveIntegerField(default=0)
    tool_calls = models.PositiveIntegerField(default=0)
    tool_errors = models.PositiveIntegerField(default=0)
    analysed = models.PositiveIntegerField(default=0)
    successes = models.PositiveIntegerField(default=0)
    provider_cost = models.DecimalField(max_digits=14, decimal_places=5, default=0)
    carrier_cost = models.DecimalField(max_digits=14, decimal_places=5, default=0)
    costed_calls = models.PositiveIntegerField(default=0)  # calls whose total cost is known
    peak_concurrent = models.PositiveIntegerField(default=0)
    calls_by_hour = ArrayField(models.IntegerField(), size=24)
    end_reasons = models.JSONField(default=dict)  # reason -> calls
    answered_as = models.JSONField(default=dict)  # answer classification outcome -> calls

    class Meta:
        abstract = True


class DailyRollup(RollupFigures):
    """Sums over the facts of one key: org, local day and the dimensions in ``KEY_FIELDS``."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    agent_id = models.BigIntegerField(default=0)
    version_id = models.BigIntegerField(default=0)
    direction = models.CharField(max_length=10)
    batch_id = models.BigIntegerField(default=0)
    number_id = models.BigIntegerField(default=0)
    carrier = models.CharField(max_length=10, blank=True)
    outcome = models.CharField(max_length=12)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=64, blank=True)
    currency = models.CharField(max_length=3, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "day", *KEY_FIELDS], name="analytics_rollup_key"),
        ]
        indexes = [models.Index(fields=["org", "batch_id"], name="analytics_rollup_org_batch")]

    def __str__(self) -> str:
        return f"rollup {self.day} ({self.calls} calls)"


class DayTotal(RollupFigures):
    """``DailyRollup`` summed over agent, version, direction, campaign and number: what an
    overview with no filter but the carrier reads (a few rows a day instead of hundreds).
    Replaced from the day's rollup rows whenever one of them changes."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    carrier = models.CharField(max_length=10, blank=True)
    outcome = models.CharField(max_length=12)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=64, blank=True)
    currency = models.CharField(max_length=3, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "day", *TOTAL_KEY_FIELDS], name="analytics_day_total_key"),
        ]

    def __str__(self) -> str:
        return f"day total {self.day} ({self.calls} calls)"
