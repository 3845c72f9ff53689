"""From a published agent version and call context to a bridge ``SessionConfig``.

Used at dial/answer time by ``calls/``: rendering call variables here means a
missing variable fails the call before anyone is dialled (``MissingVariable``),
and a missing provider credential fails it with ``MissingCredential``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.agent_settings import DEFAULTS
from agents.bridges.base import SessionConfig
from agents.builtin_tools import agent_tool_specs
from agents.models import Agent, AgentVersion
from agents.providers import provider_info
from agents.variables import MissingVariable, render
from orgs.credentials import MissingCredential, configured_providers, get_credential

# Where each provider's credential keeps an endpoint override (for self-hosted
# gateways and the test fakes).
_BASE_URL_KEY = {"openai_realtime": "websocket_base_url", "gemini_live": "base_url", "hume_evi": "base_url",
                 "deepgram_agent": "base_url"}


@dataclass(frozen=True)
class Problem:
    """One reason an agent cannot be used for a call."""

    code: str  # "provider_retired" | "not_published" | "credential_missing" | (warnings) "analysis_needs_key"
    message: str

    def __str__(self) -> str:
        return self.message


class AgentNotReady(Exception):
    """The agent cannot take or place calls yet; ``problems`` says why (one line each)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


def readiness_problems(agent: Agent, providers_with_credentials: set[str] | None = None) -> list[Problem]:
    """Why ``agent`` cannot be used for a call right now (empty when it can)."""
    problems: list[Problem] = []
    info = provider_info(agent.provider)
    if info.retired():
        problems.append(Problem("provider_retired", f"{info.label} API access ended on {info.access_ends} "
                                                    f"(the vendor's announcement); switch this agent to another provider."))
    if agent.published_version is None:
        problems.append(Problem("not_published", "The agent has no published version; publish it first."))
    needed = agent.credential_provider
    if needed is not None:
        have = providers_with_credentials if providers_with_credentials is not None else configured_providers(agent.org)
        if needed not in have:
            problems.append(Problem("credential_missing",
                                    f"The organisation has no {info.label} credential ({needed}); "
                                    f"add it under Settings → Provider credentials."))
    return problems


ANALYSIS_NEEDS_KEY = ("Post-call analysis needs an OpenAI key: calls work, but they are not summarised or scored "
                      "(analysis is skipped) until one is added under Settings → Provider credentials.")


def readiness_warnings(agent: Agent, providers_with_credentials: set[str] | None = None) -> list[Problem]:
    """What works only partly for ``agent``'s calls (they still run): today, post-call analysis
    without the org's OpenAI key (``calls.analysis`` then skips it)."""
    have = providers_with_credentials if providers_with_credentials is not None else configured_providers(agent.org)
    if "openai" not in have:
        return [Problem("analysis_needs_key", ANALYSIS_NEEDS_KEY)]
    return []


def ensure_ready(agent: Agent) -> AgentVersion:
    """The version a new call must run, or :class:`AgentNotReady`."""
    problems = readiness_problems(agent)
    if problems:
        raise AgentNotReady(problems)
    assert agent.published_version is not None
    return agent.published_version


def build_session_config(
    version: AgentVersion,
    variables: Mapping[str, Any],
    *,
    extra_tools: Sequence[dict[str, Any]] = (),
    credentials: dict[str, str] | None = None,
) -> SessionConfig:
    """The bridge configuration for one call of ``version``.

    ``variables`` fill ``{{placeholders}}`` in the prompt, first message and
    voicemail; ``extra_tools`` are further function specs (MCP tools). Raises
    :class:`~agents.variables.MissingVariable` (every missing name, across all
    texts) and :class:`~orgs.credentials.MissingCredential`.
    """
    cfg = version.settings
    info = provider_info(cfg.provider)
    rendered: dict[str, str] = {}
    missing: list[str] = []
    for field in ("system_prompt", "first_message", "voicemail_message"):
        try:
            rendered[field] = render(getattr(cfg, field), variables)
        except MissingVariable as exc:
            missing.extend(exc.names)
    if missing:
        raise MissingVariable(missing, where="agent's prompt, first message or voicemail")
    if credentials is None:
        credentials = get_credential(version.org, info.credential) if info.credential else {}
    base_url = credentials.get(_BASE_URL_KEY.get(info.name, ""), "") or None
    return SessionConfig(
        instructions=rendered["system_prompt"],
        voice=cfg.voice or info.default_voice or None,
        model=cfg.model or info.default_model or None,
        language=cfg.language or None,
        temperature=cfg.temperature,
        first_message=rendered["first_message"] or None,
        speaks_first=cfg.speaks_first or DEFAULTS.speaks_first,
        tools=[*agent_tool_specs(cfg), *extra_tools],
        vad_threshold=cfg.vad_threshold,
        allow_interruptions=cfg.allow_barge_in,
        credentials=dict(credentials),
        base_url=base_url,
        provider_options=dict(cfg.provider_options),
    )


__all__ = ["AgentNotReady", "Problem", "MissingCredential", "MissingVariable", "build_session_config", "ensure_ready",
           "readiness_problems", "readiness_warnings"]


def credential_session_config(org: Any, provider: str, **fields: Any) -> SessionConfig:
    """A bridge configuration for a session that is not an agent version's (the simulated
    caller of an agent test): the org's credential for ``provider`` (its endpoint override
    too) and the provider's default model and voice. Raises ``MissingCredential``."""
    info = provider_info(provider)
    credentials = get_credential(org, info.credential) if info.credential else {}
    fields.setdefault("model", info.default_model or None)
    fields.setdefault("voice", info.default_voice or None)
    return SessionConfig(credentials=dict(credentials),
                         base_url=credentials.get(_BASE_URL_KEY.get(info.name, ""), "") or None, **fields)
