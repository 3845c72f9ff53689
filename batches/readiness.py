"""Will an outbound campaign or schedule work? One answer for the dashboard, the API and launch.

``check_outbound`` runs, before anything is dialled, the checks whose failure would
otherwise only show up as a column of failed calls:

- the agent can take calls (published, its AI provider's credential set, provider not retired);
- the number still belongs to the organisation and its carrier has a credential (without it
  every dial fails with "no credential");
- the callees: none left to dial, or on the do-not-call list;
- the calling window: open now, or when it next opens (in the org's time zone).

Each finding is an ``Issue``: ``blocking`` ones make ``launch_batch`` refuse (code
``not_ready``) and schedules show why they will fail; the others are warnings (the
batch launches and waits, e.g. for the window). Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agents.runtime import readiness_problems
from batches import clock
from batches.models import Batch, BatchStatus, DoNotCallNumber, EntryState, ScheduledCall
from batches.windows import CallingWindow, callee_zones, next_allowed
from calls.models import PhoneNumber
from orgs.credentials import configured_providers
from orgs.models import Organization, Provider

# Distinct callee numbers examined for the window check; past this the earliest start
# found so far is reported (a 100k-row upload is checked in well under a second).
WINDOW_SCAN_LIMIT = 5000
CREDENTIALS_PAGE = "orgs:credentials"


@dataclass(frozen=True)
class Issue:
    """One finding: a stable ``code`` (API), a sentence for people, whether it blocks, and the
    dashboard page that fixes it (a URL name, or "")."""

    code: str
    message: str
    blocking: bool
    fix_url_name: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "blocking": self.blocking}


@dataclass
class Readiness:
    """The findings, and when the first call can start (None: now, or never when blocked)."""

    issues: list[Issue] = field(default_factory=list)
    starts_at: datetime | None = None

    @property
    def blocking(self) -> list[Issue]:
        return [i for i in self.issues if i.blocking]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if not i.blocking]

    @property
    def ready(self) -> bool:
        return not self.blocking

    def summary(self) -> str:
        """The blocking reasons as one sentence list (for errors)."""
        return " ".join(i.message for i in self.blocking)

    def as_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "starts_at": self.starts_at.isoformat() if self.starts_at else None,
                "problems": [i.as_dict() for i in self.blocking], "warnings": [i.as_dict() for i in self.warnings]}


def format_local(moment: datetime, zone_name: str) -> str:
    """``moment`` as people of the org read it, e.g. "Mon 7 Dec 2026, 09:00 (Europe/Paris)"."""
    local = moment.astimezone(ZoneInfo(zone_name))
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} ({zone_name})"


def _agent_issues(org: Organization, agent: Any, have: set[str]) -> list[Issue]:
    if agent is None or agent.org_id != org.pk:
        return [Issue("agent_missing", "The agent no longer exists in this organisation; choose another.", True)]
    issues = []
    for problem in readiness_problems(agent, have):
        fix = CREDENTIALS_PAGE if problem.code == "credential_missing" else ""
        issues.append(Issue(problem.code, f"Agent {agent.name}: {problem.message}", True, fix))
    return issues


def _number_issues(org: Organization, number: Any, have: set[str]) -> list[Issue]:
    if number is None or number.org_id != org.pk or not PhoneNumber.objects.filter(pk=number.pk).exists():
        return [Issue("number_missing", "The number to call from is no longer in this organisation; "
                                        "choose another under Phone numbers.", True, "calls:numbers")]
    if number.carrier not in have:
        label = Provider(number.carrier).label if number.carrier in Provider.values else number.carrier
        return [Issue("carrier_credential_missing",
                      f"The organisation has no {label} credential, so {label} cannot place calls from "
                      f"{number.e164}; every call would fail. Add it under Settings → Provider credentials.",
                      True, CREDENTIALS_PAGE)]
    return []


def _window_issue(org: Organization, window: CallingWindow, callees: Iterable[str], now: datetime,
                  readiness: Readiness) -> None:
    """Set ``starts_at`` and add a warning when the window is closed for every callee now."""
    earliest: datetime | None = None
    seen_zones: set[tuple[str, ...]] = set()
    for n, e164 in enumerate(callees):
        if n >= WINDOW_SCAN_LIMIT:
            break
        zones = tuple(callee_zones(e164, org.timezone).names)
        if zones in seen_zones:
            continue
        seen_zones.add(zones)
        allowed = next_allowed(window, e164, org.timezone, now)
        if allowed is not None and (earliest is None or allowed < earliest):
            earliest = allowed
        if earliest is not None and earliest <= now:
            return  # someone can be called right now
    if earliest is None:
        if seen_zones:
            readiness.issues.append(Issue("window_never_opens", "The calling window never opens for these numbers; "
                                                                "widen its days or hours.", True))
        return
    readiness.starts_at = earliest
    readiness.issues.append(Issue(
        "window_closed",
        f"The calling window is closed now; calls will start at {format_local(earliest, org.timezone)}.", False))


def check_outbound(org: Organization, agent: Any, from_number: Any, *, callees: Iterable[str] = (),
                   window: CallingWindow | None = None, now: datetime | None = None,
                   have: set[str] | None = None) -> Readiness:
    """Everything that would make calls from ``from_number`` with ``agent`` fail, plus the calling
    window for ``callees`` (E.164 numbers). ``have``: the org's configured credential providers,
    when the caller checks many items at once (one query instead of one per item)."""
    now = now or clock.now()
    have = have if have is not None else configured_providers(org)
    readiness = Readiness(issues=[*_agent_issues(org, agent, have), *_number_issues(org, from_number, have)])
    if window is not None:
        _window_issue(org, window, callees, now, readiness)
    return readiness


def batch_readiness(batch: Batch, *, now: datetime | None = None) -> Readiness:
    """Can ``batch`` be launched (or resumed) now, and when will its first call start?"""
    org = batch.org
    pending = (batch.entries.filter(state=EntryState.PENDING)
               .exclude(e164__in=DoNotCallNumber.objects.for_org(org).values("e164")))
    window = CallingWindow.from_dict(batch.calling_window) if batch.calling_window else None
    callees = pending.order_by("e164").values_list("e164", flat=True).distinct().iterator()
    readiness = check_outbound(org, batch.agent, batch.from_number, callees=callees, window=window, now=now)
    if batch.status in (BatchStatus.READY, BatchStatus.RUNNING, BatchStatus.PAUSED):
        waiting = batch.entries.filter(state=EntryState.PENDING).count()
        now_listed = waiting - pending.count()
        if waiting and now_listed == waiting:
            readiness.issues.append(Issue("nothing_to_dial", "Every row left to dial is now on the do-not-call "
                                                             "list; nothing would be called.", True))
        elif now_listed:
            readiness.issues.append(Issue("do_not_call", f"{now_listed} row(s) are now on the do-not-call list "
                                                         f"and will be skipped.", False))
        elif not waiting and batch.status == BatchStatus.READY:
            readiness.issues.append(Issue("nothing_to_dial", f"No row of this batch can be dialled "
                                                             f"({batch.total_rows} row(s), none valid).", True))
    return readiness


def schedule_readiness(sc: ScheduledCall, *, now: datetime | None = None, have: set[str] | None = None,
                       do_not_call: set[str] | None = None) -> Readiness:
    """Will ``sc``'s next run place its call? (Its timing is the schedule's own; no window.)
    ``have`` and ``do_not_call`` (the org's list) may be passed when checking a whole list."""
    readiness = check_outbound(sc.org, sc.agent, sc.from_number, now=now, have=have)
    listed = (sc.to in do_not_call if do_not_call is not None
              else DoNotCallNumber.objects.for_org(sc.org).filter(e164=sc.to).exists())
    if listed:
        readiness.issues.append(Issue("do_not_call", f"{sc.to} is on the do-not-call list; the call will be refused.",
                                      True, "batches:do-not-call"))
    if not sc.enabled:
        readiness.issues.append(Issue("disabled", "The schedule is disabled; it will not fire.", False))
    return readiness
