"""Retention policies: how long an organisation keeps each kind of call data.

One policy per org (``agent`` empty) and optionally one per agent, which then replaces
the org's for that agent's calls (every kind, not field by field: an agent set to keep
transcripts for 7 days while the org keeps them for 90 says exactly what it means).
A number of days is how long after the call's creation the data stays; empty keeps it
forever; 0 means "do not store": recordings are never written, transcripts exist only in
memory for the call's webhooks, and the other kinds are removed at the next purge.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from voiceplatform.models import OrgScopedModel

#: Retention fields, in the order the settings page shows them → label.
KINDS: dict[str, str] = {
    "recordings_days": "Recordings",
    "transcripts_days": "Transcripts",
    "analysis_days": "Analysis",
    "events_days": "Call events",
    "batch_rows_days": "Batch campaign rows",
}
_HELP = "Days to keep; empty keeps it forever; 0: do not store."


class RetentionPolicy(OrgScopedModel):
    """How long the org's (or one agent's) call data is kept; see the module docstring."""

    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                              help_text="Empty: the organisation's policy. Set: replaces it for this agent's calls.")
    recordings_days = models.PositiveIntegerField(null=True, blank=True, help_text=_HELP)
    transcripts_days = models.PositiveIntegerField(null=True, blank=True, help_text=_HELP)
    analysis_days = models.PositiveIntegerField(null=True, blank=True, help_text=_HELP)
    events_days = models.PositiveIntegerField(null=True, blank=True, help_text=_HELP)
    batch_rows_days = models.PositiveIntegerField(null=True, blank=True, help_text=_HELP)

    class Meta:
        verbose_name_plural = "retention policies"
        ordering = ["org", "agent__name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "agent"], name="retention_policy_per_agent"),
            models.UniqueConstraint(fields=["org"], condition=Q(agent__isnull=True), name="retention_policy_per_org"),
        ]

    def __str__(self) -> str:
        return f"Retention for {self.agent.name}" if self.agent is not None else "Retention for the organisation"

    def days(self) -> dict[str, int | None]:
        """Each retention field → its days (None: keep always)."""
        return {kind: getattr(self, kind) for kind in KINDS}
