"""Scheduled calls: one-time and cron, stored as django-celery-beat tasks.

Each ScheduledCall owns one PeriodicTask (``batches.tasks.fire_scheduled_call``)
on a ClockedSchedule (one-time, ``one_off``) or a CrontabSchedule with the
schedule's time zone, so beat's DatabaseScheduler fires it and the admin shows it.

Missed runs (beat was down when a run was due): beat fires a missed clocked task
or crontab **once** when it comes back. ``missed_run_policy`` then decides:
``run_once`` places the call (late), ``skip`` records a run in state ``missed``
with no call. A firing is "missed" when it arrives more than
``BATCHES_MISSED_GRACE_S`` (default 300 s) after its due time. Either way the run
is on record, never silently lost.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask

from batches import clock
from batches.dispatch import call_outcome
from batches.models import (
    RETRYABLE_OUTCOMES,
    MissedRunPolicy,
    Outcome,
    RunState,
    ScheduledCall,
    ScheduledCallRun,
    ScheduleKind,
)
from batches.schedule_rules import (
    ScheduleError,
    next_runs,
    parse_timezone,
    previous_run,
    validate_cron,
    validate_one_time,
)
from batches.services import BatchError
from calls.services.errors import CallError, CarrierUnavailable, ConcurrencyLimitReached
from calls.services.placement import place_outbound_call
from orgs.models import Organization
from orgs.services import SYSTEM, Actor, record_audit
from voiceplatform.phones import PhoneNumberError, normalize_phone

logger = logging.getLogger(__name__)

FIRE_TASK = "batches.tasks.fire_scheduled_call"
BUSY_RETRY = timedelta(seconds=30)
EARLY_SLACK = timedelta(seconds=2)


@dataclass
class ScheduleInput:
    name: str
    agent: Any
    from_number: Any
    to: str
    kind: str
    timezone: str = "UTC"
    run_at: datetime | str | None = None
    cron: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    max_attempts: int = 1
    retry_delay_s: int = 300
    missed_run_policy: str = MissedRunPolicy.RUN_ONCE

    def validate(self, org: Organization, *, now: datetime | None = None) -> dict[str, Any]:
        name = (self.name or "").strip()
        if not name:
            raise BatchError("a scheduled call needs a name", field="name")
        if self.agent is None or self.agent.org_id != org.pk:
            raise BatchError("no such agent in this organisation", field="agent")
        if self.from_number is None or self.from_number.org_id != org.pk:
            raise BatchError("no such number in this organisation", field="from_number")
        try:
            to = normalize_phone(str(self.to or ""), org.default_country or None).e164
        except PhoneNumberError as exc:
            raise BatchError(exc.reason, field="to") from exc
        if not isinstance(self.variables, dict):
            raise BatchError("must be an object of name → value", field="variables")
        for name_, lo, hi, value in (("max_attempts", 1, 10, self.max_attempts),
                                     ("retry_delay_s", 0, 86400, self.retry_delay_s)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise BatchError(f"must be a whole number from {lo} to {hi}", field=name_)
        if self.missed_run_policy not in MissedRunPolicy.values:
            raise BatchError(f"choose {' or '.join(MissedRunPolicy.values)}",
                             field="missed_run_policy")
        try:
            zone = parse_timezone(self.timezone)
            values: dict[str, Any] = {"timezone": zone.key, "kind": self.kind}
            if self.kind == ScheduleKind.ONE_TIME:
                if self.run_at in (None, ""):
                    raise ScheduleError("a one-time call needs a date and time", field="run_at")
                values["run_at"] = validate_one_time(self.run_at, zone.key, now=now)  # type: ignore[arg-type]
                values["cron"] = ""
            elif self.kind == ScheduleKind.CRON:
                rule = validate_cron(self.cron)
                next_runs(rule, zone.key, count=1, after=now)  # rejects rules that never run
                values["cron"] = rule.expression
                values["run_at"] = None
            else:
                raise BatchError("choose one_time or cron", field="kind")
        except ScheduleError as exc:
            raise BatchError(exc.message, field=exc.field) from exc
        values.update(name=name[:200], agent=self.agent, from_number=self.from_number, to=to,
                      variables=self.variables, enabled=bool(self.enabled), max_attempts=self.max_attempts,
                      retry_delay_s=self.retry_delay_s, missed_run_policy=self.missed_run_policy)
        return values


def preview(kind: str, *, timezone: str, cron: str = "", run_at: datetime | str | None = None,
            count: int = 5, now: datetime | None = None) -> list[datetime]:
    """What the schedule would do: the next ``count`` runs (or the one run)."""
    if kind == ScheduleKind.ONE_TIME:
        return [validate_one_time(run_at, timezone, now=now).astimezone(parse_timezone(timezone))]  # type: ignore[arg-type]
    if kind == ScheduleKind.CRON:
        return next_runs(cron, timezone, count=count, after=now)
    raise ScheduleError("choose one_time or cron", field="kind")


def upcoming(sc: ScheduledCall, count: int = 5) -> list[datetime]:
    if not sc.enabled:
        return []
    now = clock.now()
    if sc.kind == ScheduleKind.ONE_TIME:
        return [sc.run_at] if sc.run_at and sc.run_at > now and not sc.runs.exists() else []
    return next_runs(sc.cron, sc.timezone, count=count, after=now)


def _sync_periodic_task(sc: ScheduledCall) -> None:
    """Create or update the beat task that fires ``sc``. A one-time schedule's clock is a row of
    its own (ClockedSchedule), made anew on each change: the one it replaces is deleted."""
    task = sc.periodic_task
    replaced_clock = task.clocked_id if task is not None else None
    name = f"scheduled-call:{sc.public_id}"
    args = json.dumps([str(sc.org.public_id), str(sc.public_id)])
    if sc.kind == ScheduleKind.ONE_TIME:
        assert sc.run_at is not None
        schedule = {"clocked": ClockedSchedule.objects.create(clocked_time=sc.run_at), "crontab": None,
                    "one_off": True}
    else:
        minute, hour, day_of_month, month_of_year, day_of_week = sc.cron.split(" ")
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
            day_of_week=day_of_week, timezone=sc.timezone)
        schedule = {"crontab": crontab, "clocked": None, "one_off": False}
    if task is None:
        task = PeriodicTask(name=name)
    task.task = FIRE_TASK
    task.args = args
    task.enabled = sc.enabled
    task.description = f"Scheduled call {sc.name} (org {sc.org.slug})"
    for key, value in schedule.items():
        setattr(task, key, value)
    task.save()
    if replaced_clock is not None and replaced_clock != task.clocked_id:
        _drop_clock(replaced_clock)
    if sc.periodic_task_id != task.pk:
        sc.periodic_task = task
        ScheduledCall.objects.filter(pk=sc.pk).update(periodic_task=task)


def create_scheduled_call(org: Organization, actor: Actor, data: ScheduleInput) -> ScheduledCall:
    values = data.validate(org, now=clock.now())
    with transaction.atomic():
        sc = ScheduledCall.objects.create(org=org, **values)
        _sync_periodic_task(sc)
        record_audit(org, actor, "scheduled_call.created", sc, {"kind": sc.kind, "timezone": sc.timezone})
    return sc


def update_scheduled_call(sc: ScheduledCall, actor: Actor, data: ScheduleInput) -> ScheduledCall:
    values = data.validate(sc.org, now=clock.now())
    from orgs.services import diff_fields

    with transaction.atomic():
        changes = diff_fields(sc, values)
        if changes:
            sc.save()
            _sync_periodic_task(sc)
            record_audit(sc.org, actor, "scheduled_call.updated", sc,
                         {k: [str(a), str(b)] for k, (a, b) in changes.items() if k != "variables"})
    return sc


def set_scheduled_call_enabled(sc: ScheduledCall, actor: Actor, enabled: bool) -> ScheduledCall:
    with transaction.atomic():
        sc.enabled = enabled
        sc.save(update_fields=["enabled", "updated_at"])
        if sc.periodic_task_id:
            PeriodicTask.objects.filter(pk=sc.periodic_task_id).update(enabled=enabled)
            # Beat only notices changes through PeriodicTasks.last_update.
            from django_celery_beat.models import PeriodicTasks

            PeriodicTasks.update_changed()
        record_audit(sc.org, actor, "scheduled_call.enabled" if enabled else "scheduled_call.disabled", sc, {})
    return sc


def delete_scheduled_call(sc: ScheduledCall, actor: Actor) -> None:
    with transaction.atomic():
        record_audit(sc.org, actor, "scheduled_call.deleted", sc, {})
        task_id = sc.periodic_task_id
        sc.delete()
        if task_id:
            clock_id = PeriodicTask.objects.filter(pk=task_id).values_list("clocked_id", flat=True).first()
            PeriodicTask.objects.filter(pk=task_id).delete()
            if clock_id is not None:
                _drop_clock(clock_id)


def _drop_clock(clock_id: int) -> None:
    """Delete a one-time schedule's ClockedSchedule once no beat task uses it (deleting one in
    use would take its tasks with it: the foreign key cascades)."""
    if not PeriodicTask.objects.filter(clocked_id=clock_id).exists():
        ClockedSchedule.objects.filter(pk=clock_id).delete()


# --- firing -----------------------------------------------------------------------------


def due_time(sc: ScheduledCall, now: datetime) -> datetime:
    if sc.kind == ScheduleKind.ONE_TIME:
        assert sc.run_at is not None
        return sc.run_at
    # Beat may deliver a hair before the worker's clock reaches the run time; a
    # little slack keeps that firing attached to its own run, not the previous one.
    return previous_run(sc.cron, sc.timezone, at=now + EARLY_SLACK)


def fire(sc: ScheduledCall) -> ScheduledCallRun | None:
    """Beat fired ``sc``: record the run for its due time (once) and dial, or
    record it as missed per the policy. A second delivery of the same firing
    returns the run already made."""
    if not sc.enabled:
        return None
    now = clock.now()
    due = due_time(sc, now)
    missed = now - due > timedelta(seconds=settings.BATCHES_MISSED_GRACE_S)
    skip = missed and sc.missed_run_policy == MissedRunPolicy.SKIP
    try:
        with transaction.atomic():
            run = ScheduledCallRun.objects.create(
                scheduled_call=sc, org=sc.org, due_at=due, fired_at=now,
                state=RunState.MISSED if skip else RunState.DIALING,
                error=(f"fired {int((now - due).total_seconds())} s late (scheduler was down); skipped by policy"
                       if skip else ""),
            )
            ScheduledCall.objects.filter(pk=sc.pk).update(last_fired_at=now)
            record_audit(sc.org, SYSTEM, "scheduled_call.missed" if skip else "scheduled_call.fired", sc,
                         {"due_at": due.isoformat(), "late_s": int((now - due).total_seconds())})
    except IntegrityError:
        return ScheduledCallRun.objects.get(scheduled_call=sc, due_at=due)
    if not skip:
        dial_run(run)
    return run


def dial_run(run: ScheduledCallRun) -> None:
    sc = run.scheduled_call
    with transaction.atomic():
        locked = ScheduledCallRun.objects.select_for_update().get(pk=run.pk)
        if locked.state not in (RunState.DIALING, RunState.RETRY_WAIT):
            return
        locked.attempts += 1
        locked.state = RunState.DIALING
        locked.save(update_fields=["attempts", "state", "updated_at"])
    run.attempts = locked.attempts
    now = clock.now()
    try:
        call = place_outbound_call(sc.org, sc.agent, sc.to, sc.from_number, sc.variables, SYSTEM,
                                   idempotency_key=run.idempotency_key)
    except ConcurrencyLimitReached:
        ScheduledCallRun.objects.filter(pk=run.pk).update(
            state=RunState.RETRY_WAIT, attempts=run.attempts - 1, next_attempt_at=now + BUSY_RETRY,
            error="the organisation was at its concurrent-call limit; waiting")
        return
    except CarrierUnavailable as exc:
        _ended(run, sc, Outcome.FAILED, now, f"The carrier did not place the call: {exc.message}", retryable=exc.retryable)
        return
    except CallError as exc:
        ScheduledCallRun.objects.filter(pk=run.pk).update(state=RunState.FAILED, error=exc.message[:2000])
        return
    ScheduledCallRun.objects.filter(pk=run.pk).update(state=RunState.IN_CALL, call=call, error="")


def _ended(run: ScheduledCallRun, sc: ScheduledCall, outcome: Outcome, now: datetime, error: str = "",
           retryable: bool = True) -> None:
    """Done, retry later, or failed; conditional on the run's state so the signal
    and the sweep recording the same outcome do it once."""
    if outcome == Outcome.COMPLETED:
        state, next_at = RunState.DONE, None
    elif retryable and outcome in RETRYABLE_OUTCOMES and run.attempts < sc.max_attempts:
        state, next_at = RunState.RETRY_WAIT, now + timedelta(seconds=sc.retry_delay_s)
    else:
        state, next_at = RunState.FAILED, None
    ScheduledCallRun.objects.filter(pk=run.pk, state__in=(RunState.DIALING, RunState.IN_CALL)).update(
        state=state, outcome=outcome, next_attempt_at=next_at, error=error[:2000])


def record_outcome(call_public_id: str) -> None:
    run = (ScheduledCallRun.objects.filter(call__public_id=call_public_id, state=RunState.IN_CALL)
           .select_related("call", "scheduled_call").first())
    if run is not None and run.call is not None:
        outcome = call_outcome(run.call)
        if outcome is not None:
            _ended(run, run.scheduled_call, outcome, clock.now())


def process_runs() -> int:
    """Record outcomes of finished calls and redial runs whose retry is due."""
    now = clock.now()
    changed = 0
    for run in ScheduledCallRun.objects.filter(state=RunState.IN_CALL).select_related("call", "scheduled_call"):
        outcome = call_outcome(run.call) if run.call else Outcome.FAILED
        if outcome is not None:
            _ended(run, run.scheduled_call, outcome, now)
            changed += 1
    due = ScheduledCallRun.objects.filter(state=RunState.RETRY_WAIT, next_attempt_at__lte=now)
    for run in due.select_related("scheduled_call__org", "scheduled_call__agent", "scheduled_call__from_number"):
        dial_run(run)
        changed += 1
    return changed
