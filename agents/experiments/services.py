"""State changes of experiments, and the version a new call runs.

Verbs (each validates, saves and records one audit entry): ``create_experiment``
(``experiment.created``), ``start_experiment`` (``experiment.started``),
``set_weights`` (``experiment.weights_changed``), ``end_experiment``
(``experiment.ended``; the winner is promoted through ``agents.services.promote_version``,
which records ``agent.promoted``).

``choose_version`` is the one place a new call's version is picked
(``calls.agent_link`` calls it for inbound, API, batch, scheduled and web calls): the
published version, or, while an experiment runs, the caller's arm's version.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.experiments.assignment import pick_arm
from agents.models import Agent, AgentVersion, Experiment, ExperimentArm, ExperimentState
from agents.services import promote_version
from orgs.services import Actor, record_audit
from voiceplatform.errors import ServiceError

LABELS = "ABCDEF"
MAX_WEIGHT = 1000


class ExperimentError(ServiceError):
    """An experiment change that cannot be made in the experiment's state; the message says why
    (the API answers 409 ``conflict``)."""

    code = "conflict"
    status = 409


@dataclass(frozen=True)
class ArmSpec:
    """One requested arm: a version of the agent (by number) and its weight."""

    version: int
    weight: int = 1


def _clean_weight(weight: object, field: str) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
        raise ValidationError({field: [f"A weight must be a whole number from 0 to {MAX_WEIGHT}; got {weight!r}."]})
    return weight


def create_experiment(agent: Agent, actor: Actor, *, name: str, arms: Sequence[ArmSpec],
                      hypothesis: str = "") -> Experiment:
    """A draft experiment of ``agent`` with arms A, B, … in the order given (A is the
    control the others are compared with). Raises ValidationError keyed by field."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["An experiment needs a name."]})
    if len(name) > 120:
        raise ValidationError({"name": ["At most 120 characters."]})
    if not 2 <= len(arms) <= len(LABELS):
        raise ValidationError({"arms": [f"An experiment needs 2 to {len(LABELS)} arms; got {len(arms)}."]})
    numbers = [a.version for a in arms]
    if len(set(numbers)) != len(numbers):
        raise ValidationError({"arms": ["Each arm must use a different version."]})
    versions = {v.number: v for v in AgentVersion.objects.for_org(agent.org).filter(agent=agent, number__in=numbers)}
    missing = [n for n in numbers if n not in versions]
    if missing:
        raise ValidationError({"arms": [f"{agent.name} has no published version {', '.join(map(str, missing))}."]})
    weights = [_clean_weight(a.weight, "arms") for a in arms]
    if sum(weights) == 0:
        raise ValidationError({"arms": ["At least one arm needs a weight above 0."]})
    with transaction.atomic():
        experiment = Experiment.objects.create(org=agent.org, agent=agent, name=name, hypothesis=hypothesis.strip(),
                                               created_by=actor.label[:200])
        for label, spec, weight in zip(LABELS, arms, weights, strict=False):
            ExperimentArm.objects.create(org=agent.org, experiment=experiment, label=label,
                                         version=versions[spec.version], weight=weight)
        record_audit(agent.org, actor, "experiment.created", experiment,
                     {"agent": str(agent.public_id),
                      "arms": {label: [spec.version, w] for label, spec, w in zip(LABELS, arms, weights, strict=False)}})
    return experiment


def start_experiment(experiment: Experiment, actor: Actor) -> Experiment:
    """Draft → running: new calls of the agent are split between the arms from now on.
    At most one experiment runs per agent (a database constraint backs this check)."""
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if locked.state != ExperimentState.DRAFT:
            raise ExperimentError(f"Only a draft experiment can be started; “{locked.name}” is {locked.state}.")
        running = (Experiment.objects.for_org(locked.org).filter(agent_id=locked.agent_id,
                                                                 state=ExperimentState.RUNNING).first())
        if running is not None:
            raise ExperimentError(f"“{running.name}” is already running on this agent; end it first.")
        locked.state, locked.started_at = ExperimentState.RUNNING, timezone.now()
        try:
            with transaction.atomic():
                locked.save(update_fields=["state", "started_at", "updated_at"])
        except IntegrityError:
            raise ExperimentError("Another experiment was started on this agent at the same moment; "
                                  "end it first.") from None
        record_audit(locked.org, actor, "experiment.started", locked, {})
    experiment.state, experiment.started_at = locked.state, locked.started_at
    return experiment


def set_weights(experiment: Experiment, actor: Actor, weights: dict[str, int]) -> Experiment:
    """Change arms' weights (label → weight) of a draft or running experiment. Callers
    move only to an arm whose share grew or from one whose share shrank."""
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if locked.state == ExperimentState.ENDED:
            raise ExperimentError(f"“{locked.name}” has ended; its weights can no longer change.")
        arms = {a.label: a for a in locked.arms.all()}
        unknown = sorted(set(weights) - set(arms))
        if unknown:
            raise ValidationError({"weights": [f"No arm {', '.join(unknown)}; the arms are {', '.join(arms)}."]})
        new = {label: _clean_weight(weights.get(label, arm.weight), "weights") for label, arm in arms.items()}
        if sum(new.values()) == 0:
            raise ValidationError({"weights": ["At least one arm needs a weight above 0."]})
        changes = {label: [arms[label].weight, w] for label, w in new.items() if arms[label].weight != w}
        for label in changes:
            ExperimentArm.objects.filter(pk=arms[label].pk).update(weight=new[label], updated_at=timezone.now())
        if changes:
            record_audit(locked.org, actor, "experiment.weights_changed", locked, changes)
    return experiment


def end_experiment(experiment: Experiment, actor: Actor, winner: ExperimentArm | None) -> Experiment:
    """Running → ended: assignment stops at once; with a ``winner`` its version becomes the
    agent's published version (``None`` keeps the published version as it is)."""
    if winner is not None and winner.experiment_id != experiment.pk:
        raise ValidationError({"winner": ["That arm belongs to another experiment."]})
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if locked.state != ExperimentState.RUNNING:
            raise ExperimentError(f"Only a running experiment can be ended; “{locked.name}” is {locked.state}.")
        locked.state, locked.ended_at, locked.winner = ExperimentState.ENDED, timezone.now(), winner
        locked.save(update_fields=["state", "ended_at", "winner", "updated_at"])
        record_audit(locked.org, actor, "experiment.ended", locked,
                     {"winner": winner.label if winner else None,
                      "version": winner.version.number if winner else None})
        if winner is not None:
            promote_version(locked.agent, winner.version, actor, reason=f"Won experiment “{locked.name}”")
    experiment.state, experiment.ended_at, experiment.winner = locked.state, locked.ended_at, winner
    return experiment


# -- assignment ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Arm:
    key: str
    weight: int
    arm: ExperimentArm


def running_experiment(agent: Agent) -> Experiment | None:
    """The agent's running experiment, if any (one indexed lookup: the partial unique index)."""
    return Experiment.objects.for_org(agent.org).filter(agent=agent, state=ExperimentState.RUNNING).first()


def choose_version(agent: Agent, caller_key: str) -> tuple[AgentVersion | None, ExperimentArm | None]:
    """The version a new call of ``agent`` runs and the experiment arm that chose it.

    Without a running experiment: the published version and no arm. With one: the arm
    ``caller_key`` hashes to (``agents.experiments.assignment``); an empty key gets a
    random one (the call is assigned, but not sticky)."""
    experiment = running_experiment(agent)
    if experiment is None:
        return agent.published_version, None
    arms = [_Arm(str(a.public_id), a.weight, a) for a in experiment.arms.select_related("version")]
    chosen = pick_arm(str(experiment.public_id), arms, caller_key or uuid.uuid4().hex).arm
    return chosen.version, chosen


def web_caller_key(actor: Actor) -> str:
    """The caller key of a browser call: the signed-in user (so one person hears one
    version, like a repeat phone caller), else the API key that started it, else ''
    (a random key then: the call is assigned but not sticky)."""
    if actor.user is not None and getattr(actor.user, "pk", None):
        return f"user:{actor.user.pk}"
    if actor.api_key is not None:
        return f"api-key:{actor.api_key.pk}"
    return ""
