"""The checks a scenario's call is held to that the platform evaluates itself.

A check is a small JSON object (stored on the scenario, written in YAML or the API):

| type              | fields                                        | passes when                                       |
|-------------------|-----------------------------------------------|---------------------------------------------------|
| `tool_called`     | `tool`, optional `arguments_schema`, `expect` | the agent ran `tool` (with arguments matching the |
|                   | (default true)                                | JSON schema, if given) — or never did, `expect: false` |
| `transfer`        | optional `destination`, `expect` (true)       | the call was transferred (to `destination`) — or not |
| `agent_ended_call`| `expect` (true)                               | the agent hung up (its `end_call` tool)           |
| `no_tool_errors`  | —                                             | every tool the agent ran succeeded                |
| `max_duration`    | `seconds`                                     | the call lasted at most that long                 |
| `first_audio_within` | `ms`                                       | the caller heard the agent within that many ms of the call starting |

``validate_checks`` refuses anything else with a message naming the check and field, so a
typo is an error when the scenario is saved, never a check that silently passes.
``evaluate`` is pure: it reads a ``CallFacts`` (what the simulated call produced) and
returns one result per check, each with a human-readable ``detail``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from calls.media.tools import argument_errors

CHECK_TYPES: dict[str, tuple[set[str], set[str]]] = {
    # type: (required fields, optional fields)
    "tool_called": ({"tool"}, {"arguments_schema", "expect"}),
    "transfer": (set(), {"destination", "expect"}),
    "agent_ended_call": (set(), {"expect"}),
    "no_tool_errors": (set(), set()),
    "max_duration": ({"seconds"}, set()),
    "first_audio_within": ({"ms"}, set()),
}


@dataclass(frozen=True)
class ToolUse:
    name: str
    arguments: dict[str, Any]
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class CallFacts:
    tool_uses: Sequence[ToolUse] = ()
    transferred_to: str | None = None
    end_reason: str = ""
    duration_ms: int = 0
    first_audio_ms: int | None = None
    #: tool calls the session refused (not offered, invalid arguments): errors too
    refused_tools: Sequence[str] = field(default_factory=tuple)


def validate_checks(checks: Any) -> list[dict[str, Any]]:
    """The checks as stored, or ValueError naming the first problem."""
    if not isinstance(checks, list):
        raise ValueError("checks must be a list")
    for i, check in enumerate(checks, 1):
        if not isinstance(check, dict):
            raise ValueError(f"check {i} must be an object with a 'type'")
        kind = check.get("type")
        if kind not in CHECK_TYPES:
            raise ValueError(f"check {i} has an unknown type {kind!r}; one of {', '.join(CHECK_TYPES)}")
        required, optional = CHECK_TYPES[kind]
        missing = required - set(check)
        if missing:
            raise ValueError(f"check {i} ({kind}) needs {', '.join(sorted(missing))}")
        extra = set(check) - required - optional - {"type"}
        if extra:
            raise ValueError(f"check {i} ({kind}) has unknown fields {', '.join(sorted(extra))}")
        if "expect" in check and not isinstance(check["expect"], bool):
            raise ValueError(f"check {i} ({kind}): expect must be true or false")
        for number in ("seconds", "ms"):
            if number in check and (not isinstance(check[number], int | float) or isinstance(check[number], bool)
                                    or check[number] <= 0):
                raise ValueError(f"check {i} ({kind}): {number} must be a positive number")
        if kind == "tool_called":
            if not isinstance(check["tool"], str) or not check["tool"].strip():
                raise ValueError(f"check {i} (tool_called): tool must be a tool name")
            schema = check.get("arguments_schema")
            if schema is not None:
                if not isinstance(schema, dict):
                    raise ValueError(f"check {i} (tool_called): arguments_schema must be a JSON schema object")
                problems = [p for p in argument_errors(schema, {}) if p.startswith("(schema)")]
                if problems:
                    raise ValueError(f"check {i} (tool_called): {problems[0].split(': ', 1)[1]}")
    return list(checks)


def label(check: Mapping[str, Any]) -> str:
    """A short name for the check, as the results and JUnit show it."""
    kind = check["type"]
    negated = check.get("expect") is False
    if kind == "tool_called":
        return f"{'never calls' if negated else 'calls'} {check['tool']}"
    if kind == "transfer":
        where = f" to {check['destination']}" if check.get("destination") else ""
        return f"{'no transfer' if negated else 'transfers'}{where}"
    if kind == "agent_ended_call":
        return "agent does not hang up" if negated else "agent ends the call"
    if kind == "no_tool_errors":
        return "no tool errors"
    if kind == "max_duration":
        return f"lasts at most {check['seconds']} s"
    return f"first agent audio within {check['ms']} ms"


def _tool_called(check: Mapping[str, Any], facts: CallFacts) -> tuple[bool, str]:
    uses = [u for u in facts.tool_uses if u.name == check["tool"]]
    schema = check.get("arguments_schema")
    matching = [u for u in uses if schema is None or not argument_errors(schema, u.arguments)]
    expect = check.get("expect", True)
    if expect:
        if matching:
            return True, f"called {len(matching)} time(s) with matching arguments"
        if uses:
            why = "; ".join(argument_errors(schema, uses[-1].arguments))
            return False, f"called, but the arguments did not match: {why}"
        return False, "never called"
    if matching:
        return False, f"called {len(matching)} time(s)"
    return True, "not called"


def _one(check: Mapping[str, Any], facts: CallFacts) -> tuple[bool, str]:
    kind = check["type"]
    expect = check.get("expect", True)
    if kind == "tool_called":
        return _tool_called(check, facts)
    if kind == "transfer":
        wanted = check.get("destination")
        happened = facts.transferred_to is not None and (not wanted or facts.transferred_to == wanted)
        detail = f"transferred to {facts.transferred_to}" if facts.transferred_to else "no transfer"
        return happened is expect, detail
    if kind == "agent_ended_call":
        ended = facts.end_reason == "agent_hangup"
        return ended is expect, f"the call ended: {facts.end_reason.replace('_', ' ') or 'unknown'}"
    if kind == "no_tool_errors":
        failed = [f"{u.name}: {u.error}" if u.error else u.name for u in facts.tool_uses if not u.ok]
        failed += [f"{name}: refused" for name in facts.refused_tools]
        return not failed, "; ".join(failed)[:300] if failed else "every tool succeeded"
    if kind == "max_duration":
        seconds = facts.duration_ms / 1000
        return seconds <= float(check["seconds"]), f"lasted {seconds:.1f} s"
    if facts.first_audio_ms is None:
        return False, "the agent never spoke"
    return facts.first_audio_ms <= float(check["ms"]), f"first agent audio after {facts.first_audio_ms} ms"


def evaluate(checks: Sequence[Mapping[str, Any]], facts: CallFacts) -> list[dict[str, Any]]:
    """One ``{"check", "type", "passed", "detail"}`` per check, in order."""
    results = []
    for check in checks:
        passed, detail = _one(check, facts)
        results.append({"check": label(check), "type": check["type"], "passed": passed, "detail": detail})
    return results
