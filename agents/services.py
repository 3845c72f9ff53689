"""State changes for agents. Views, API viewsets and admin actions all call these.

Each function validates, saves, and records one audit entry (``agent.created``,
``agent.updated``, ``agent.published``, ``agent.restored``, ``agent.promoted``,
``agent.duplicated``, ``agent.deleted``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from agents.grants import draft_grants, grants_match, restore_grants
from agents.models import CONFIG_FIELDS, Agent, AgentVersion, config_matches
from agents.providers import PROVIDERS
from orgs.models import Organization
from orgs.services import Actor, diff_fields, record_audit
from voiceplatform.errors import ServiceError
from voiceplatform.models import delete_unless_in_use

# Long free-text fields: the audit entry says they changed, not what they say.
_TEXT_FIELDS = {"system_prompt", "first_message", "voicemail_message", "success_criteria"}


class AgentError(ServiceError):
    """A request that cannot be carried out as asked; the message says why."""

    code = "agent_error"


class ProviderRetired(AgentError):
    """The agent would newly use, or publish with, a provider whose API access has ended."""

    code = "provider_retired"


def check_provider_allowed(provider: str, current: str | None = None) -> None:
    """Raise :class:`ProviderRetired` if ``provider`` is retired and is not ``current``
    (the agent's own provider: an existing retired agent may still be edited, e.g. to
    switch it to another provider, but nothing may newly choose a retired one)."""
    info = PROVIDERS.get(provider)
    if info is not None and info.retired() and provider != current:
        raise ProviderRetired(info.retirement_notice())


def _audit_changes(changes: dict[str, list[Any]]) -> dict[str, Any]:
    return {field: ("changed" if field in _TEXT_FIELDS else value) for field, value in changes.items()}


def _check_fields(values: dict[str, Any]) -> None:
    unknown = sorted(set(values) - set(CONFIG_FIELDS))
    if unknown:
        raise ValidationError({name: ["Not an agent setting."] for name in unknown})


# Agent field → the model whose public ids it holds (apps that may not be installed).
_RELATED_IDS = {"knowledge_base_ids": "knowledge.KnowledgeBase", "mcp_server_ids": "integrations.McpServer"}


def check_related_ids(org: Organization, agent: Agent) -> None:
    """Every knowledge base / MCP server id must belong to ``org`` (others read as unknown)."""
    errors: dict[str, list[str]] = {}
    for field, label in _RELATED_IDS.items():
        ids = [str(v) for v in getattr(agent, field) or []]
        if not ids:
            continue
        try:
            model = apps.get_model(label)
        except LookupError:
            errors[field] = [f"{label} is not installed; leave this empty."]
            continue
        valid = {str(u) for u in model.objects.for_org(org).filter(
            public_id__in=[i for i in ids if _is_uuid(i)]).values_list("public_id", flat=True)}
        unknown = [i for i in ids if i not in valid]
        if unknown:
            errors[field] = [f"No such {model._meta.verbose_name} in this organisation: {', '.join(unknown)}."]
    if errors:
        raise ValidationError(errors)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def create_agent(org: Organization, actor: Actor, **values: Any) -> Agent:
    """Create an agent (a draft with no published version). A retired provider raises
    :class:`ProviderRetired`; invalid settings raise ``ValidationError`` keyed by field."""
    _check_fields(values)
    return save_new_agent(Agent(org=org, **values), actor)


def save_new_agent(agent: Agent, actor: Actor) -> Agent:
    """Validate and insert an unsaved agent (its ``org`` set) — for forms that build the instance."""
    check_provider_allowed(agent.provider)
    agent.full_clean(exclude=["org", "published_version"])
    check_related_ids(agent.org, agent)
    with transaction.atomic():
        agent.save()
        record_audit(agent.org, actor, "agent.created", agent, {"provider": agent.provider})
    return agent


def update_agent(agent: Agent, actor: Actor, **values: Any) -> Agent:
    """Change the draft. The published version (and running calls) are unaffected.
    Switching to a retired provider raises :class:`ProviderRetired`."""
    _check_fields(values)
    if "provider" in values:
        check_provider_allowed(values["provider"], current=agent.provider)
    changes = diff_fields(agent, values)
    if not changes:
        return agent
    agent.full_clean(exclude=["org", "published_version"])
    check_related_ids(agent.org, agent)
    with transaction.atomic():
        agent.save()
        record_audit(agent.org, actor, "agent.updated", agent, _audit_changes(changes))
    return agent


#: checks a higher layer registers (from its AppConfig.ready) that may refuse a publish
_PUBLISH_CHECKS: list[Callable[[Agent, dict[str, Any]], None]] = []


def register_publish_check(check: Callable[[Agent, dict[str, Any]], None]) -> None:
    """``check(agent, draft_config)`` runs before a draft is frozen into a version and raises
    a ``ServiceError`` to refuse it (e.g. the agent's test suite has not passed on this draft)."""
    if check not in _PUBLISH_CHECKS:
        _PUBLISH_CHECKS.append(check)


def publish_agent(agent: Agent, actor: Actor, note: str = "") -> AgentVersion:
    """Freeze the draft (settings and tool grants) into a new immutable version and make it
    the one calls use.
    A draft on a retired provider raises :class:`ProviderRetired` (it could never take a call)."""
    with transaction.atomic():
        # Lock the agent so two publishes cannot take the same number.
        locked = Agent.objects.select_for_update().get(pk=agent.pk)
        check_provider_allowed(locked.provider)
        locked.full_clean(exclude=["org", "published_version"])
        current = locked.published_version
        config = locked.snapshot()
        grants = draft_grants(locked)
        if current is not None and config_matches(current.config, config) and grants_match(current, grants):
            raise AgentError(f"Nothing to publish: the draft is the same as version {current.number}.",
                             code="nothing_to_publish")
        for check in _PUBLISH_CHECKS:
            check(locked, config)
        number = (AgentVersion.objects.filter(agent=locked).aggregate(n=Max("number"))["n"] or 0) + 1
        version = AgentVersion.objects.create(
            org=locked.org, agent=locked, number=number, config=config, tool_grants=grants, note=note[:200],
            published_by=actor.label[:200],
        )
        locked.published_version = version
        locked.save(update_fields=["published_version", "updated_at"])
        record_audit(locked.org, actor, "agent.published", locked, {"version": number, "note": note[:200]})
    agent.published_version = version
    return version


def restore_version(agent: Agent, version: AgentVersion, actor: Actor, *, publish: bool = False) -> Agent:
    """Copy ``version`` (settings and tool grants) back into the draft; with ``publish`` also
    publish it as a new version.
    A version on a retired provider is restored only into an agent still on that provider."""
    if version.agent_id != agent.pk:
        raise AgentError(f"Version {version.number} belongs to another agent.")
    check_provider_allowed(version.settings.provider, current=agent.provider)
    with transaction.atomic():
        before = agent.snapshot()
        agent.apply_snapshot(version.config)
        changed = sorted(f for f in CONFIG_FIELDS if before.get(f) != getattr(agent, f))
        agent.full_clean(exclude=["org", "published_version"])
        agent.save()
        changed += restore_grants(agent, version, actor)
        record_audit(agent.org, actor, "agent.restored", agent,
                     {"version": version.number, "fields": changed})
        if publish and agent.has_unpublished_changes:
            publish_agent(agent, actor, note=f"Restored from version {version.number}")
    return agent


def promote_version(agent: Agent, version: AgentVersion, actor: Actor, *, reason: str = "") -> Agent:
    """Make an existing version the one new calls use, leaving the draft alone.

    Used when an experiment ends: the winner was measured as that exact version, so it
    is published as itself (same number) rather than copied into a new one, and any
    unpublished draft edits survive. A no-op when it is already published."""
    if version.agent_id != agent.pk:
        raise AgentError(f"Version {version.number} belongs to another agent.")
    with transaction.atomic():
        locked = Agent.objects.select_for_update().get(pk=agent.pk)
        previous = locked.published_version
        if previous is not None and previous.pk == version.pk:
            return locked
        locked.published_version = version
        locked.save(update_fields=["published_version", "updated_at"])
        record_audit(locked.org, actor, "agent.promoted", locked,
                     {"version": [previous.number if previous else None, version.number], "reason": reason[:200]})
    agent.published_version = version
    return agent


def duplicate_agent(agent: Agent, actor: Actor, name: str | None = None) -> Agent:
    """A new agent with the same draft configuration and no versions (not of an agent
    on a retired provider: that would create one, :class:`ProviderRetired`)."""
    check_provider_allowed(agent.provider)
    values = agent.snapshot()
    values["name"] = (name or f"Copy of {agent.name}")[:120]
    copy = Agent(org=agent.org, **values)
    copy.full_clean(exclude=["org", "published_version"])
    with transaction.atomic():
        copy.save()
        record_audit(agent.org, actor, "agent.duplicated", copy, {"source": str(agent.public_id)})
    return copy


def delete_agent(agent: Agent, actor: Actor) -> None:
    """Delete the agent (its versions go with it) and record the audit entry in the same transaction."""
    with transaction.atomic():
        record_audit(agent.org, actor, "agent.deleted", agent)
        delete_unless_in_use(agent)
