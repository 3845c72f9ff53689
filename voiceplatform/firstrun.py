"""The first-run checklist on the dashboard home: five steps from a new org to a real call.

Every step is read from the database each time the page renders, never stored as a flag,
so the list cannot drift from the truth (deleting the only agent un-ticks "Create an agent"):

1. create an agent                   -> any Agent of the org
2. add a provider key                -> a ProviderCredential for an AI provider an agent can use
3. test it in the browser            -> any web call of the org
4. add a phone number                -> any PhoneNumber of the org
5. take a call                       -> an inbound or outbound phone call that connected (answered,
                                        in progress or completed); a failed, busy, unanswered or
                                        canceled dial is not a call taken, and the step says so

The checklist hides by itself once every step is done. An admin may also dismiss it for the
whole org earlier; the dismissal is an audit entry (``organization.first_run_dismissed``),
so it is visible in the audit log and needs no column of its own.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q
from django.urls import reverse

from orgs.models import AuditLog, Organization
from orgs.services import Actor, record_audit

DISMISSED_ACTION = "organization.first_run_dismissed"


@dataclass(frozen=True)
class Step:
    """One checklist step: what to do, whether it is done, where to do it."""

    key: str
    title: str
    help: str
    done: bool
    url: str
    action: str
    #: set when an attempt exists but did not succeed (e.g. a dial that failed), with its link
    note: str = ""
    note_url: str = ""


@dataclass(frozen=True)
class Checklist:
    steps: list[Step]
    dismissed: bool

    @property
    def done_count(self) -> int:
        return sum(1 for step in self.steps if step.done)

    @property
    def complete(self) -> bool:
        return self.done_count == len(self.steps)

    @property
    def percent(self) -> int:
        return round(100 * self.done_count / len(self.steps)) if self.steps else 100

    @property
    def visible(self) -> bool:
        """Shown until every step is done or an admin dismissed it for the org."""
        return not (self.complete or self.dismissed)


def ai_credential_providers() -> set[str]:
    """``orgs.models.Provider`` values that an agent's AI provider can use (OpenAI, Gemini, ...)."""
    from agents.providers import PROVIDERS

    return {info.credential for info in PROVIDERS.values() if info.credential and not info.retired()}


def first_run_checklist(org: Organization) -> Checklist:
    """The org's checklist, every step computed from its current rows."""
    from agents.models import Agent
    from calls.models import Call, Direction, PhoneNumber, Status
    from orgs.models import ProviderCredential

    first_agent = Agent.objects.for_org(org).order_by("created_at").first()
    has_key = ProviderCredential.objects.for_org(org).filter(provider__in=ai_credential_providers()).exists()
    has_web_call = Call.objects.for_org(org).filter(direction=Direction.WEB).exists()
    has_number = PhoneNumber.objects.for_org(org).exists()
    # Someone was on the line / the dial came to nothing.
    connected = (Status.IN_PROGRESS, Status.COMPLETED)
    not_connected = (Status.FAILED, Status.BUSY, Status.NO_ANSWER, Status.CANCELED)
    phone_calls = Call.objects.for_org(org).filter(direction__in=[Direction.INBOUND, Direction.OUTBOUND])
    took_call = phone_calls.filter(Q(answered_at__isnull=False) | Q(status__in=connected)).exists()
    failed_call = None if took_call else phone_calls.filter(status__in=not_connected).order_by("-created_at").first()

    web_url = reverse("calls:web")
    if first_agent is not None:
        web_url += f"?agent={first_agent.public_id}"
    steps = [
        Step("agent", "Create an agent", "A prompt, a voice and an AI provider. The Echo provider needs no key.",
             first_agent is not None, reverse("agents:create"), "New agent"),
        Step("key", "Add a provider key", "Your OpenAI or Gemini API key, encrypted at rest.",
             has_key, reverse("orgs:credentials"), "Add a key"),
        Step("web_call", "Test it in the browser", "Talk to your agent through the microphone, no phone needed.",
             has_web_call, web_url, "Talk to an agent"),
        Step("number", "Add a phone number", "Import your Twilio or Plivo numbers and pick the agent that answers.",
             has_number, reverse("calls:numbers"), "Add a number"),
        Step("call", "Take a call", "Call one of your numbers, or schedule an outbound call.",
             took_call, reverse("batches:schedule-create") if has_number else reverse("calls:numbers"),
             "Schedule a call" if has_number else "Add a number first",
             note=(f"Your last phone call did not connect ({failed_call.get_status_display().lower()})."
                   if failed_call is not None else ""),
             note_url=reverse("calls:detail", args=[failed_call.public_id]) if failed_call is not None else ""),
    ]
    dismissed = AuditLog.objects.for_org(org).filter(action=DISMISSED_ACTION).exists()
    return Checklist(steps=steps, dismissed=dismissed)


def dismiss_first_run(org: Organization, actor: Actor) -> None:
    """Hide the checklist for every member of ``org`` (idempotent: a second dismissal records nothing)."""
    if not AuditLog.objects.for_org(org).filter(action=DISMISSED_ACTION).exists():
        record_audit(org, actor, DISMISSED_ACTION, target=org)
