"""Scoped reads for agents (every query starts from the org)."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from agents.models import CONFIG_FIELDS, Agent, AgentVersion
from agents.runtime import Problem, readiness_problems
from orgs.credentials import configured_providers
from orgs.models import Organization


def agents_for(org: Organization) -> QuerySet[Agent]:
    return Agent.objects.for_org(org).select_related("published_version")


def versions_of(agent: Agent) -> QuerySet[AgentVersion]:
    return AgentVersion.objects.for_org(agent.org).filter(agent=agent).order_by("-number")


def readiness_by_agent(org: Organization, agents: list[Agent]) -> dict[int, list[Problem]]:
    """Agent pk → readiness problems, with one credentials query for the whole list."""
    have = configured_providers(org)
    return {agent.pk: readiness_problems(agent, have) for agent in agents}


@dataclass(frozen=True)
class FieldDiff:
    field: str
    old: str
    new: str
    #: unified diff lines for multi-line text, else empty
    lines: tuple[str, ...] = ()


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def diff_configs(old: dict[str, Any], new: dict[str, Any]) -> list[FieldDiff]:
    """What changed from ``old`` to ``new`` (version configs or a draft snapshot)."""
    out: list[FieldDiff] = []
    for field in CONFIG_FIELDS:
        a, b = old.get(field), new.get(field)
        if a == b:
            continue
        sa, sb = _show(a if a is not None else ""), _show(b if b is not None else "")
        lines: tuple[str, ...] = ()
        if "\n" in sa or "\n" in sb or len(sa) > 80 or len(sb) > 80:
            lines = tuple(difflib.unified_diff(sa.splitlines(), sb.splitlines(), lineterm="", n=1))[2:]
        out.append(FieldDiff(field, sa, sb, lines))
    return out
