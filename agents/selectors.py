"""Scoped reads for agents (every query starts from the org)."""

from __future__ import annotations

import difflib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from agents.models import CONFIG_FIELDS, Agent, AgentVersion
from agents.runtime import Problem, readiness_problems, readiness_warnings
from agents.variables import Placeholder, placeholders
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


def call_variables(agent: Agent) -> list[Placeholder]:
    """The variables a new call of ``agent`` takes: those of its *published* version's prompt,
    first message and voicemail message (the texts the call renders), in first-use order.
    Empty when nothing is published: a draft's variables are not what a call would run."""
    version = agent.published_version
    if version is None:
        return []
    cfg = version.settings
    return placeholders(cfg.system_prompt, cfg.first_message, cfg.voicemail_message)


def readiness_warnings_by_agent(org: Organization, agents: list[Agent]) -> dict[int, list[Problem]]:
    """Agent pk → readiness warnings (calls run, something is degraded), one credentials query."""
    have = configured_providers(org)
    return {agent.pk: readiness_warnings(agent, have) for agent in agents}


@dataclass(frozen=True)
class FieldDiff:
    field: str
    old: str
    new: str
    #: unified diff lines for multi-line text, else empty
    lines: tuple[str, ...] = ()
    #: what the dashboard calls the field ("Knowledge bases", not knowledge_base_ids)
    label: str = ""


# Config fields holding public ids → the model whose names a diff shows instead (apps that may be absent).
_NAMED_IDS = {"knowledge_base_ids": ("knowledge.KnowledgeBase", "knowledge base"),
              "mcp_server_ids": ("integrations.McpServer", "MCP server")}
#: Beside the config: the tool grants a version froze (``agents.grants``; see :func:`with_grants`).
GRANTS = "tool_grants"
_LABELS = {"knowledge_base_ids": "Knowledge bases", "mcp_server_ids": "MCP servers", "builtin_tools": "Built-in tools",
           GRANTS: "Tool grants",
           "max_call_duration_s": "Maximum call length (s)", "silence_timeout_s": "Silence timeout (s)",
           "vad_threshold": "Speech detection threshold", "min_speech_ms": "Minimum speech (ms)"}


def field_label(field: str) -> str:
    """The human name of an agent config field."""
    if field in _LABELS:
        return _LABELS[field]
    try:
        return str(getattr(Agent._meta.get_field(field), "verbose_name", field)).capitalize()
    except Exception:  # a field only old versions have
        return field.replace("_", " ").capitalize()


def id_names(org: Organization | None, configs: list[dict[str, Any]]) -> dict[str, str]:
    """Public id → name of the knowledge bases and MCP servers the configs name, within ``org`` only."""
    from django.apps import apps

    names: dict[str, str] = {}
    if org is None:
        return names
    wanted = dict(_NAMED_IDS)
    wanted["http_tools"] = ("integrations.HttpTool", "HTTP tool")
    for field, (model_label, _kind) in wanted.items():
        ids = {str(v) for config in configs for v in _named_ids(config, field) if isinstance(v, str)}
        if not ids:
            continue
        try:
            model = apps.get_model(model_label)
        except LookupError:
            continue
        valid = []
        for value in ids:
            try:
                valid.append(uuid.UUID(value))
            except ValueError:
                continue
        for public_id, name in model.objects.for_org(org).filter(public_id__in=valid).values_list("public_id", "name"):
            names[str(public_id)] = name
    return names


def _named_ids(config: dict[str, Any], field: str) -> list[Any]:
    """The ids ``config`` holds for ``field``, tool grants included (their MCP servers are
    named like ``mcp_server_ids``, their HTTP tools under ``http_tools``)."""
    raw = config.get(GRANTS)
    grants: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if field == "http_tools":
        return list(grants.get("http_tools") or [])
    found = list(config.get(field) or [])
    if field == "mcp_server_ids":
        found += list(grants.get("mcp_tools") or {})
    return found


def with_grants(config: dict[str, Any], grants: dict[str, Any] | None) -> dict[str, Any]:
    """A version's config (or a draft's snapshot) with its tool grants, for :func:`diff_configs`."""
    return {**config, GRANTS: grants}


def _show_grants(grants: dict[str, Any], names: dict[str, str]) -> str:
    def name(value: Any, kind: str) -> str:
        return names.get(str(value)) or f"a deleted {kind} ({str(value)[:8]}…)"

    parts = [f"HTTP tools: {', '.join(name(t, 'HTTP tool') for t in grants.get('http_tools') or []) or 'none'}"]
    for server, tools in sorted((grants.get("mcp_tools") or {}).items()):
        parts.append(f"{name(server, 'MCP server')}: only {', '.join(tools)}")
    return "; ".join(parts)


def _choice_labels() -> dict[str, dict[str, str]]:
    """Config fields whose stored codes have labels (providers, tools, events, who speaks first)."""
    from agents.builtin_tools import BUILTIN_TOOL_CHOICES
    from agents.models import WEBHOOK_EVENT_CHOICES, SpeaksFirst
    from agents.providers import PROVIDERS

    return {"provider": {name: info.label for name, info in PROVIDERS.items()},
            "builtin_tools": dict(BUILTIN_TOOL_CHOICES), "webhook_events": dict(WEBHOOK_EVENT_CHOICES),
            "speaks_first": {str(k): str(v) for k, v in SpeaksFirst.choices}}


def _show(value: Any, field: str = "", names: dict[str, str] | None = None) -> str:
    if isinstance(value, str) and field not in ("provider", "speaks_first"):
        return value
    if field == GRANTS and isinstance(value, dict):
        return _show_grants(value, names or {})
    if field in _NAMED_IDS and isinstance(value, list):
        kind = _NAMED_IDS[field][1]
        return ", ".join((names or {}).get(str(v)) or f"a deleted {kind} ({str(v)[:8]}…)" for v in value)
    labels = _choice_labels().get(field)
    if labels is not None:
        if isinstance(value, list):
            return ", ".join(labels.get(str(v), str(v)) for v in value)
        return labels.get(str(value), str(value))
    if field in ("transfer_destinations", "sms_recipients") and isinstance(value, list):
        return ", ".join(f"{d.get('label', '')} ({d.get('number', '')})" if isinstance(d, dict) else str(d)
                         for d in value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def diff_configs(old: dict[str, Any], new: dict[str, Any], *, org: Organization | None = None,
                 names: dict[str, str] | None = None) -> list[FieldDiff]:
    """What changed from ``old`` to ``new`` (version configs or a draft snapshot).

    With ``org`` (or ``names`` from :func:`id_names`), knowledge base and MCP server ids show as their
    names; an id that no longer resolves in that org shows as a deleted one, never as a bare UUID."""
    if names is None:
        names = id_names(org, [old, new])
    out: list[FieldDiff] = []
    for field in (*CONFIG_FIELDS, GRANTS):
        a, b = old.get(field), new.get(field)
        if a == b or (field == GRANTS and (a is None or b is None)):
            continue  # grants of a version from before they were versioned: not known
        sa = _show(a if a is not None else "", field, names)
        sb = _show(b if b is not None else "", field, names)
        lines: tuple[str, ...] = ()
        if "\n" in sa or "\n" in sb or len(sa) > 80 or len(sb) > 80:
            lines = tuple(difflib.unified_diff(sa.splitlines(), sb.splitlines(), lineterm="", n=1))[2:]
        out.append(FieldDiff(field, sa, sb, lines, field_label(field)))
    return out
