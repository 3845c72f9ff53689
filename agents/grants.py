"""Tool grants as part of what an agent version freezes.

Which tools an agent may call is stored beside the agent, by the apps that own the tools
(``integrations``: ``HttpToolGrant`` rows for custom HTTP tools, ``McpToolGrant`` rows that
narrow an MCP server's tools). Those rows are the *draft's* grants: editing them must not
change what a published version can call, or a live line would pick up an edit nobody
published. So publishing copies them into ``AgentVersion.tool_grants`` (a JSON object, one
key per kind), calls read the version's copy, and restoring a version writes its copy back
into the rows.

``agents`` sits below ``integrations`` (DESIGN layers), so it does not import it: the owning
app registers each kind from ``AppConfig.ready`` with :func:`register_grants` — a function
that reads an agent's rows as JSON and one that rewrites them from JSON. Values must be
JSON with a stable order (sorted), so equal grants compare equal.

A version published before grants were versioned has ``tool_grants`` = ``None``; its calls
keep using the agent's current rows (what they always did), like ``webhook_events``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.models import Agent, AgentVersion
    from orgs.services import Actor


@dataclass(frozen=True)
class GrantKind:
    """One kind of grant: ``read(agent)`` → JSON; ``restore(agent, value, actor)`` sets the
    agent's rows from such a value (audited by the owning app)."""

    key: str
    read: Callable[[Agent], Any]
    restore: Callable[[Agent, Any, Actor], None]


_KINDS: dict[str, GrantKind] = {}


def register_grants(key: str, read: Callable[[Agent], Any], restore: Callable[[Agent, Any, Actor], None]) -> None:
    """Version the grants of one kind under ``key`` (idempotent: the last registration wins)."""
    _KINDS[key] = GrantKind(key, read, restore)


def draft_grants(agent: Agent) -> dict[str, Any]:
    """The agent's current grants, every registered kind, as a version stores them."""
    return {key: kind.read(agent) for key, kind in sorted(_KINDS.items())}


def grants_match(version: AgentVersion, grants: Mapping[str, Any]) -> bool:
    """Whether ``version`` was published with ``grants`` (a version from before grants were
    versioned uses the current rows, so it always matches them)."""
    frozen = version.tool_grants
    if frozen is None:
        return True
    return all(frozen.get(key, _empty(value)) == value for key, value in grants.items())


def _empty(value: Any) -> Any:
    # a kind registered after the version was published: it had none of it
    return type(value)()


def restore_grants(agent: Agent, version: AgentVersion, actor: Actor) -> list[str]:
    """Write ``version``'s grants back into the agent's rows; returns the keys that changed.
    A version without frozen grants leaves the rows alone."""
    frozen = version.tool_grants
    if frozen is None:
        return []
    current = draft_grants(agent)
    changed = []
    for key, kind in sorted(_KINDS.items()):
        value = frozen.get(key, _empty(current[key]))
        if value != current[key]:
            kind.restore(agent, value, actor)
            changed.append(key)
    return changed
